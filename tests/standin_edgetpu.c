/* A stand-in for libedgetpu, for tests only: no Edge TPU exists on the test machines.
 *
 * It exports what the toolkit uses of the real library: the external-delegate ABI that
 * load_delegate() calls (tflite_plugin_create_delegate / tflite_plugin_destroy_delegate) and the
 * device list of edgetpu_c.h (edgetpu_list_devices / edgetpu_free_devices). Its delegate claims
 * no nodes, so the model runs on the CPU exactly as without it.
 *
 * Environment:
 *   STANDIN_EDGETPU_DEVICES  the devices it pretends to see, e.g. "usb,usb,pci" (default "usb")
 *   STANDIN_EDGETPU_LOG      a file it appends one line to per call, with the options it received
 *   STANDIN_EDGETPU_FAIL     if set, creating a delegate fails with this message
 *
 * Build: cc -shared -fPIC -o libstandin_edgetpu.so standin_edgetpu.c
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* TfLiteDelegate as TensorFlow Lite's common.h lays it out (2.14 and LiteRT 2.x). */
typedef int TfLiteStatus; /* kTfLiteOk = 0 */
struct TfLiteContext;
typedef struct TfLiteDelegate {
  void *data_;
  TfLiteStatus (*Prepare)(struct TfLiteContext *context, struct TfLiteDelegate *delegate);
  void *CopyFromBufferHandle;
  void *CopyToBufferHandle;
  void *FreeBufferHandle;
  int64_t flags;
  void *opaque_delegate_builder;
} TfLiteDelegate;

/* edgetpu_c.h */
enum edgetpu_device_type { EDGETPU_APEX_PCI = 0, EDGETPU_APEX_USB = 1 };
struct edgetpu_device {
  enum edgetpu_device_type type;
  const char *path;
};

#define MAX_DEVICES 16
static char paths[MAX_DEVICES][64];

static void log_line(const char *text) {
  const char *name = getenv("STANDIN_EDGETPU_LOG");
  if (!name) return;
  FILE *file = fopen(name, "a");
  if (!file) return;
  fprintf(file, "%s\n", text);
  fclose(file);
}

/* The pretended devices, in order; paths are /standin/<type>/<n>. */
static size_t devices(struct edgetpu_device *out) {
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

/* libedgetpu's device names: "", "usb", "pci", ":N", "usb:N", "pci:N", "usb:/path". */
static int device_exists(const char *name) {
  struct edgetpu_device list[MAX_DEVICES];
  size_t count = devices(list);
  const char *colon = strchr(name, ':');
  size_t type_length = colon ? (size_t)(colon - name) : strlen(name);
  int want_type = -1;
  if (type_length == 3 && !strncmp(name, "usb", 3)) want_type = EDGETPU_APEX_USB;
  else if (type_length == 3 && !strncmp(name, "pci", 3)) want_type = EDGETPU_APEX_PCI;
  else if (type_length != 0) return 0;
  if (colon && colon[1] == '/') {
    for (size_t i = 0; i < count; i++)
      if ((int)list[i].type == want_type && !strcmp(list[i].path, colon + 1)) return 1;
    return 0;
  }
  long wanted = colon ? strtol(colon + 1, NULL, 10) : 0, index = 0;
  for (size_t i = 0; i < count; i++) {
    if (want_type >= 0 && (int)list[i].type != want_type) continue;
    if (index++ == wanted) return 1;
  }
  return 0;
}

static TfLiteStatus prepare(struct TfLiteContext *context, TfLiteDelegate *delegate) {
  (void)context;
  (void)delegate;
  return 0; /* claims no nodes: every op stays on the CPU */
}

TfLiteDelegate *tflite_plugin_create_delegate(char **keys, char **values, size_t count,
                                              void (*report_error)(const char *)) {
  char line[1024] = "create";
  const char *device = "";
  for (size_t i = 0; i < count; i++) {
    size_t used = strlen(line);
    snprintf(line + used, sizeof line - used, " %s=%s", keys[i], values[i]);
    if (!strcmp(keys[i], "device")) device = values[i];
  }
  log_line(line);
  const char *failure = getenv("STANDIN_EDGETPU_FAIL");
  if (failure) {
    if (report_error) report_error(failure);
    return NULL;
  }
  if (!device_exists(device)) {
    char message[256];
    snprintf(message, sizeof message, "Could not find an Edge TPU matching '%s'", device);
    if (report_error) report_error(message);
    return NULL;
  }
  TfLiteDelegate *delegate = calloc(1, sizeof *delegate);
  if (delegate) delegate->Prepare = prepare;
  return delegate;
}

void tflite_plugin_destroy_delegate(TfLiteDelegate *delegate) {
  if (!delegate) return;
  log_line("destroy");
  free(delegate);
}

struct edgetpu_device *edgetpu_list_devices(size_t *num_devices) {
  struct edgetpu_device *list = calloc(MAX_DEVICES, sizeof *list);
  *num_devices = list ? devices(list) : 0;
  return list;
}

void edgetpu_free_devices(struct edgetpu_device *dev) { free(dev); }
