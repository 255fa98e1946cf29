/* A stand-in for libedgetpu, for tests and benches only: no Edge TPU exists on the test machines.
 *
 * It exports what the toolkit uses of the real library: the external-delegate ABI that
 * load_delegate() calls (tflite_plugin_create_delegate / tflite_plugin_destroy_delegate) and the
 * device list of edgetpu_c.h (edgetpu_list_devices / edgetpu_free_devices).
 *
 * Its delegate claims every "edgetpu-custom-op" node, as libedgetpu does, and computes it as a copy
 * (input i to output i): utils/testing/standin.py puts such a node after the input of a real model,
 * so the model's results are exact and every invoke() runs through this code, where it can fail.
 * Models without the op run on the CPU exactly as without a delegate.
 *
 * Environment:
 *   STANDIN_EDGETPU_DEVICES  the devices it pretends to have, e.g. "usb,usb,pci" (default "usb");
 *                            device D is the D-th of them (0-based), whatever is plugged in
 *   STANDIN_EDGETPU_LOG      a file it appends one line to per call, with the options it received
 *   STANDIN_EDGETPU_FAIL     if set, creating a delegate fails with this message
 *   STANDIN_EDGETPU_FAULTS   faults, ";"-separated, each "D@N[+T][/P]": invoke number N (1-based,
 *                            counted per device over every interpreter on it) of device D fails;
 *                            with +T the device is also unplugged for T seconds ("inf": for good):
 *                            every invoke fails, no delegate is created for it and it is not listed;
 *                            with /P the fault comes back every P invokes after N; a new
 *                            value starts afresh (counts reset, every device plugged in)
 *   STANDIN_EDGETPU_INVOKE_MS every invoke takes this long (a slow device; a large value: a hung one)
 *
 * Build: cc -shared -fPIC -o libstandin_edgetpu.so standin_edgetpu.c
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The parts of TensorFlow Lite's common.h used here (2.14 and LiteRT 2.x lay them out alike;
 * fields are only ever added at the end, so the structs passed in are read up to what is used). */
typedef int TfLiteStatus; /* kTfLiteOk = 0, kTfLiteError = 1 */
typedef struct TfLiteIntArray {
  int size;
  int data[];
} TfLiteIntArray;
typedef struct TfLiteTensor {
  int type;
  void *data;
  TfLiteIntArray *dims;
  struct { float scale; int32_t zero_point; } params;
  int allocation_type;
  size_t bytes;
  const void *allocation;
  const char *name;
  void *delegate;
  int buffer_handle;
  char data_is_stale;
  char is_variable;
  struct { int type; void *params; } quantization;
  void *sparsity;
  const TfLiteIntArray *dims_signature;
} TfLiteTensor;
/* context->tensors is indexed as an array: the size must be TFLite's. */
_Static_assert(sizeof(void *) != 8 || sizeof(TfLiteTensor) == 112, "TfLiteTensor is 112 bytes on 64-bit");
typedef struct TfLiteNode {
  TfLiteIntArray *inputs;
  TfLiteIntArray *outputs;
  TfLiteIntArray *intermediates;
  TfLiteIntArray *temporaries;
  void *user_data;
} TfLiteNode; /* only read through pointers */
struct TfLiteDelegate;
struct TfLiteContext;
typedef struct TfLiteRegistration {
  void *(*init)(struct TfLiteContext *context, const char *buffer, size_t length);
  void (*free)(struct TfLiteContext *context, void *buffer);
  TfLiteStatus (*prepare)(struct TfLiteContext *context, TfLiteNode *node);
  TfLiteStatus (*invoke)(struct TfLiteContext *context, TfLiteNode *node);
  const char *(*profiling_string)(const struct TfLiteContext *context, const TfLiteNode *node);
  int32_t builtin_code;
  const char *custom_name;
  int version;
  void *registration_external;
  void *async_kernel;
  uint64_t inplace_operator;
  void *reserved[8]; /* passed by value: room for fields a later TFLite may read, all zero */
} TfLiteRegistration;
typedef struct TfLiteContext {
  size_t tensors_size;
  TfLiteStatus (*GetExecutionPlan)(struct TfLiteContext *context, TfLiteIntArray **plan);
  TfLiteTensor *tensors;
  void *impl_;
  void *ResizeTensor;
  void (*ReportError)(struct TfLiteContext *context, const char *format, ...);
  void *AddTensors;
  TfLiteStatus (*GetNodeAndRegistration)(struct TfLiteContext *context, int node_index, TfLiteNode **node,
                                         TfLiteRegistration **registration);
  TfLiteStatus (*ReplaceNodeSubsetsWithDelegateKernels)(struct TfLiteContext *context,
                                                        TfLiteRegistration registration,
                                                        const TfLiteIntArray *nodes,
                                                        struct TfLiteDelegate *delegate);
} TfLiteContext; /* only read through pointers */
typedef struct TfLiteDelegate {
  void *data_;
  TfLiteStatus (*Prepare)(TfLiteContext *context, struct TfLiteDelegate *delegate);
  void *CopyFromBufferHandle;
  void *CopyToBufferHandle;
  void *FreeBufferHandle;
  int64_t flags;
  void *opaque_delegate_builder;
  void *reserved[8];
} TfLiteDelegate;
typedef struct TfLiteDelegateParams {
  TfLiteDelegate *delegate;
  TfLiteIntArray *nodes_to_replace;
  TfLiteIntArray *input_tensors;
  TfLiteIntArray *output_tensors;
} TfLiteDelegateParams;

/* edgetpu_c.h */
enum edgetpu_device_type { EDGETPU_APEX_PCI = 0, EDGETPU_APEX_USB = 1 };
struct edgetpu_device {
  enum edgetpu_device_type type;
  const char *path;
};

#define MAX_DEVICES 16
#define MAX_FAULTS 64
static char paths[MAX_DEVICES][64];
static long invokes[MAX_DEVICES];          /* per device, over the process */
static double unplugged_until[MAX_DEVICES]; /* monotonic seconds; 0: plugged in */

struct fault {
  int device;
  long at, every;
  double seconds; /* 0: a transient error */
};

static void log_line(const char *text) {
  const char *name = getenv("STANDIN_EDGETPU_LOG");
  if (!name) return;
  FILE *file = fopen(name, "a");
  if (!file) return;
  fprintf(file, "%s\n", text);
  fclose(file);
}

static double now(void) {
  struct timespec time;
  clock_gettime(CLOCK_MONOTONIC, &time);
  return time.tv_sec + time.tv_nsec * 1e-9;
}

/* The state belongs to one fault schedule: the library stays loaded across the tests of a process. */
static void follow_schedule(void) {
  static char schedule[4096];
  const char *spec = getenv("STANDIN_EDGETPU_FAULTS");
  if (!spec) spec = "";
  if (strncmp(spec, schedule, sizeof schedule - 1) == 0) return;
  snprintf(schedule, sizeof schedule, "%s", spec);
  memset(invokes, 0, sizeof invokes);
  memset(unplugged_until, 0, sizeof unplugged_until);
}

static int plugged_in(int device) {
  follow_schedule();
  return now() >= unplugged_until[device];
}

/* Every pretended device, plugged in or not, in order; paths are /standin/<type>/<n>. */
static size_t all_devices(struct edgetpu_device *out) {
  const char *spec = getenv("STANDIN_EDGETPU_DEVICES");
  if (!spec) spec = "usb";
  size_t count = 0, seen[2] = {0, 0};
  const char *p = spec;
  while (*p && count < MAX_DEVICES) {
    size_t length = strcspn(p, ",");
    if (length == 3 && (!strncmp(p, "usb", 3) || !strncmp(p, "pci", 3))) {
      enum edgetpu_device_type type = p[0] == 'u' ? EDGETPU_APEX_USB : EDGETPU_APEX_PCI;
      snprintf(paths[count], sizeof paths[count], "/standin/%.3s/%zu", p, seen[type]++);
      out[count].type = type;
      out[count].path = paths[count];
      count++;
    }
    p += length + (p[length] == ',');
  }
  return count;
}

/* The device (its number in STANDIN_EDGETPU_DEVICES) that a libedgetpu device name opens now:
 * "", "usb", "pci", ":N", "usb:N", "pci:N", counted over the devices plugged in; -1 if none. */
static int find_device(const char *name) {
  struct edgetpu_device list[MAX_DEVICES];
  size_t count = all_devices(list);
  const char *colon = strchr(name, ':');
  size_t type_length = colon ? (size_t)(colon - name) : strlen(name);
  int want_type = -1;
  if (type_length == 3 && !strncmp(name, "usb", 3)) want_type = EDGETPU_APEX_USB;
  else if (type_length == 3 && !strncmp(name, "pci", 3)) want_type = EDGETPU_APEX_PCI;
  else if (type_length != 0) return -1;
  char *end = NULL;
  long wanted = colon ? strtol(colon + 1, &end, 10) : 0, index = 0;
  if (colon && (end == colon + 1 || *end || wanted < 0)) return -1;
  for (size_t i = 0; i < count; i++) {
    if ((want_type >= 0 && (int)list[i].type != want_type) || !plugged_in((int)i)) continue;
    if (index++ == wanted) return (int)i;
  }
  return -1;
}

static size_t read_faults(struct fault *faults) {
  const char *spec = getenv("STANDIN_EDGETPU_FAULTS");
  size_t count = 0;
  while (spec && *spec && count < MAX_FAULTS) {
    struct fault f = {0, 0, 0, 0.0};
    char *end;
    f.device = (int)strtol(spec, &end, 10);
    if (*end == '@') f.at = strtol(end + 1, &end, 10);
    if (*end == '+') {
      if (!strncmp(end + 1, "inf", 3)) {
        f.seconds = INFINITY;
        end += 4;
      } else {
        f.seconds = strtod(end + 1, &end);
      }
    }
    if (*end == '/') f.every = strtol(end + 1, &end, 10);
    if (f.at > 0 && f.device >= 0 && f.device < MAX_DEVICES) faults[count++] = f;
    spec = end + strcspn(end, ";");
    if (*spec == ';') spec++;
  }
  return count;
}

/* Whether invoke number ``n`` of ``device`` meets a fault; unplugs the device if it says so. */
static int faulty_invoke(int device, long n) {
  struct fault faults[MAX_FAULTS];
  size_t count = read_faults(faults);
  for (size_t i = 0; i < count; i++) {
    const struct fault *f = &faults[i];
    if (f->device != device || n < f->at) continue;
    if (n == f->at || (f->every > 0 && (n - f->at) % f->every == 0)) {
      if (f->seconds > 0) unplugged_until[device] = now() + f->seconds;
      return 1;
    }
  }
  return 0;
}

struct kernel {
  int device;
};

static void *kernel_init(TfLiteContext *context, const char *buffer, size_t length) {
  (void)context;
  (void)length;
  const TfLiteDelegateParams *params = (const TfLiteDelegateParams *)buffer;
  struct kernel *kernel = malloc(sizeof *kernel);
  if (kernel) kernel->device = (int)(intptr_t)params->delegate->data_;
  return kernel;
}

static void kernel_free(TfLiteContext *context, void *buffer) {
  (void)context;
  free(buffer);
}

/* The node's work: output i is a copy of input i. A fault fails it in libedgetpu's words. */
static TfLiteStatus kernel_invoke(TfLiteContext *context, TfLiteNode *node) {
  const struct kernel *kernel = node->user_data;
  int device = kernel->device;
  follow_schedule();
  const char *slow = getenv("STANDIN_EDGETPU_INVOKE_MS");
  if (slow && *slow) {
    long ms = strtol(slow, NULL, 10);
    struct timespec pause = {(time_t)(ms / 1000), (ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
  }
  long n = ++invokes[device];
  int was_plugged_in = plugged_in(device);
  if (!was_plugged_in || faulty_invoke(device, n)) {
    context->ReportError(context, "%s", was_plugged_in ? "Deadline exceeded: USB transfer error 2 [LibUsbDataOutCallback]"
                                                       : "Failed precondition: Device is not open.");
    return 1;
  }
  for (int i = 0; i < node->inputs->size && i < node->outputs->size; i++) {
    const TfLiteTensor *in = &context->tensors[node->inputs->data[i]];
    TfLiteTensor *out = &context->tensors[node->outputs->data[i]];
    if (in->bytes != out->bytes) {
      context->ReportError(context, "stand-in edgetpu-custom-op: input %d has %zu bytes, output %zu", i, in->bytes,
                           out->bytes);
      return 1;
    }
    memcpy(out->data, in->data, in->bytes);
  }
  return 0;
}

/* Claims every edgetpu-custom-op node, as libedgetpu does. */
static TfLiteStatus prepare(TfLiteContext *context, TfLiteDelegate *delegate) {
  TfLiteIntArray *plan;
  if (context->GetExecutionPlan(context, &plan) != 0) return 1;
  TfLiteIntArray *claimed = malloc(sizeof(int) * (size_t)(plan->size + 1));
  if (!claimed) return 1;
  claimed->size = 0;
  for (int i = 0; i < plan->size; i++) {
    TfLiteNode *node;
    TfLiteRegistration *registration;
    if (context->GetNodeAndRegistration(context, plan->data[i], &node, &registration) != 0) continue;
    if (registration->custom_name && !strcmp(registration->custom_name, "edgetpu-custom-op"))
      claimed->data[claimed->size++] = plan->data[i];
  }
  TfLiteStatus status = 0;
  if (claimed->size) {
    TfLiteRegistration kernel;
    memset(&kernel, 0, sizeof kernel);
    kernel.init = kernel_init;
    kernel.free = kernel_free;
    kernel.invoke = kernel_invoke;
    kernel.builtin_code = 32; /* BuiltinOperator_CUSTOM */
    kernel.custom_name = "EdgeTpuDelegateForCustomOp";
    kernel.version = 1;
    status = context->ReplaceNodeSubsetsWithDelegateKernels(context, kernel, claimed, delegate);
  }
  free(claimed);
  return status;
}

TfLiteDelegate *tflite_plugin_create_delegate(char **keys, char **values, size_t count,
                                              void (*report_error)(const char *)) {
  char line[1024] = "create";
  const char *name = "";
  for (size_t i = 0; i < count; i++) {
    size_t used = strlen(line);
    snprintf(line + used, sizeof line - used, " %s=%s", keys[i], values[i]);
    if (!strcmp(keys[i], "device")) name = values[i];
  }
  log_line(line);
  const char *failure = getenv("STANDIN_EDGETPU_FAIL");
  if (failure) {
    if (report_error) report_error(failure);
    return NULL;
  }
  int device = find_device(name);
  if (device < 0) {
    char message[256];
    snprintf(message, sizeof message, "Could not find an Edge TPU matching '%s'", name);
    if (report_error) report_error(message);
    return NULL;
  }
  TfLiteDelegate *delegate = calloc(1, sizeof *delegate);
  if (delegate) {
    delegate->data_ = (void *)(intptr_t)device;
    delegate->Prepare = prepare;
    /* kTfLiteDelegateFlagsAllowDynamicTensors: otherwise TFLite prepares every op before this
     * delegate's Prepare, and the edgetpu-custom-op, which only a delegate resolves, fails. */
    delegate->flags = 1;
  }
  return delegate;
}

void tflite_plugin_destroy_delegate(TfLiteDelegate *delegate) {
  if (!delegate) return;
  log_line("destroy");
  free(delegate);
}

/* The devices plugged in, in order. */
struct edgetpu_device *edgetpu_list_devices(size_t *num_devices) {
  struct edgetpu_device all[MAX_DEVICES];
  size_t count = all_devices(all), listed = 0;
  struct edgetpu_device *list = calloc(MAX_DEVICES, sizeof *list);
  for (size_t i = 0; list && i < count; i++)
    if (plugged_in((int)i)) list[listed++] = all[i];
  *num_devices = listed;
  return list;
}

void edgetpu_free_devices(struct edgetpu_device *dev) { free(dev); }
