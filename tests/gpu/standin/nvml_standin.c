/*
 * A stand-in libnvidia-ml.so.1 for tests on hosts without an NVIDIA driver.
 *
 * It exports the NVML C functions that nvidia-ml-py calls for `opsctl gpu status`, with
 * NVML's signatures and struct layouts, so the real Python bindings load it through ctypes
 * exactly as they load the driver's library. Its answers come from a text file named by
 * OPSCTL_NVML_STANDIN_DATA, read at init, one `key=value` per line:
 *
 *   init=!9                       nvmlInit fails with that NVML return code
 *   driver=550.54.15  nvml=12.550.54.15  cuda=12040  count=2
 *   device.0.name=NVIDIA H100 80GB HBM3
 *   device.0.memory_used=1024     (also memory_total, memory_reserved, util_gpu, util_mem,
 *                                   temperature, power_mw, power_limit_mw, clock_sm,
 *                                   clock_mem, ecc_corrected, ecc_uncorrected, mig, cc=9.0,
 *                                   arch, uuid)
 *   device.0.process=PID:BYTES[:GI:CI]           compute process; BYTES may be NA
 *   device.0.graphics_process=PID:BYTES[:GI:CI]
 *   device.0.handle=!15           nvmlDeviceGetHandleByIndex fails with that code
 *
 * A key that is absent answers NVML_ERROR_NOT_SUPPORTED; a value `!N` answers return
 * code N. Nothing here touches hardware.
 * Build: gcc -shared -fPIC -o DIR/libnvidia-ml.so.1 nvml_standin.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int nvmlReturn_t;

enum {
    SUCCESS = 0,
    ERROR_UNINITIALIZED = 1,
    ERROR_INVALID_ARGUMENT = 2,
    ERROR_NOT_SUPPORTED = 3,
    ERROR_INSUFFICIENT_SIZE = 7,
    ERROR_DRIVER_NOT_LOADED = 9,
    ERROR_ARGUMENT_VERSION_MISMATCH = 25,
    ERROR_UNKNOWN = 999,
};

#define MAX_ENTRIES 512
#define MAX_DEVICES 16
#define MAX_PROCESSES 64
#define MEMORY_V2_VERSION 0x02000028u
#define TEMPERATURE_V1_VERSION 0x0100000Cu
#define NOT_AVAILABLE_ULL 0xFFFFFFFFFFFFFFFFull

typedef struct {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_t;

typedef struct {
    unsigned int version;
    unsigned long long total;
    unsigned long long reserved;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_v2_t;

typedef struct {
    unsigned int gpu;
    unsigned int memory;
} nvmlUtilization_t;

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlProcessInfo_t;

typedef struct {
    unsigned int version;
    int sensorType;
    int temperature;
} nvmlTemperature_t;

typedef struct {
    int index;
} standin_device;

typedef standin_device *nvmlDevice_t;

static char *keys[MAX_ENTRIES];
static char *values[MAX_ENTRIES];
static int entry_count = 0;
static int initialised = 0;
static standin_device devices[MAX_DEVICES];

static void forget_entries(void) {
    for (int i = 0; i < entry_count; i++) {
        free(keys[i]);
        free(values[i]);
    }
    entry_count = 0;
}

static void strip(char *text) {
    size_t length = strlen(text);
    while (length > 0 && (text[length - 1] == '\n' || text[length - 1] == '\r')) {
        text[--length] = '\0';
    }
}

static int load_entries(void) {
    const char *path = getenv("OPSCTL_NVML_STANDIN_DATA");
    if (path == NULL) {
        return 0;
    }
    FILE *file = fopen(path, "r");
    if (file == NULL) {
        return 0;
    }
    char line[1024];
    forget_entries();
    while (fgets(line, sizeof line, file) != NULL && entry_count < MAX_ENTRIES) {
        strip(line);
        char *equals = strchr(line, '=');
        if (line[0] == '#' || equals == NULL) {
            continue;
        }
        *equals = '\0';
        keys[entry_count] = strdup(line);
        values[entry_count] = strdup(equals + 1);
        entry_count++;
    }
    fclose(file);
    return 1;
}

static const char *lookup(const char *key) {
    for (int i = 0; i < entry_count; i++) {
        if (strcmp(keys[i], key) == 0) {
            return values[i];
        }
    }
    return NULL;
}

static const char *device_value(nvmlDevice_t device, const char *field) {
    char key[128];
    snprintf(key, sizeof key, "device.%d.%s", device->index, field);
    return lookup(key);
}

/* SUCCESS with the value's text, or the return code the data asks for. */
static nvmlReturn_t answer(const char *value, const char **text) {
    if (!initialised) {
        return ERROR_UNINITIALIZED;
    }
    if (value == NULL) {
        return ERROR_NOT_SUPPORTED;
    }
    if (value[0] == '!') {
        return (nvmlReturn_t)strtol(value + 1, NULL, 10);
    }
    *text = value;
    return SUCCESS;
}

static nvmlReturn_t answer_string(const char *value, char *buffer, unsigned int length) {
    const char *text = NULL;
    nvmlReturn_t result = answer(value, &text);
    if (result != SUCCESS) {
        return result;
    }
    if (buffer == NULL || strlen(text) + 1 > length) {
        return ERROR_INSUFFICIENT_SIZE;
    }
    strcpy(buffer, text);
    return SUCCESS;
}

static nvmlReturn_t answer_ull(const char *value, unsigned long long *out) {
    const char *text = NULL;
    nvmlReturn_t result = answer(value, &text);
    if (result != SUCCESS) {
        return result;
    }
    if (out == NULL) {
        return ERROR_INVALID_ARGUMENT;
    }
    *out = strtoull(text, NULL, 10);
    return SUCCESS;
}

static nvmlReturn_t answer_uint(const char *value, unsigned int *out) {
    unsigned long long wide = 0;
    nvmlReturn_t result = answer_ull(value, &wide);
    if (result == SUCCESS) {
        *out = (unsigned int)wide;
    }
    return result;
}

static nvmlReturn_t device_uint(nvmlDevice_t device, const char *field, unsigned int *out) {
    if (device == NULL) {
        return ERROR_INVALID_ARGUMENT;
    }
    return answer_uint(device_value(device, field), out);
}

/* Initialisation */

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    if (!load_entries()) {
        return ERROR_DRIVER_NOT_LOADED;
    }
    const char *init = lookup("init");
    if (init != NULL && init[0] == '!') {
        return (nvmlReturn_t)strtol(init + 1, NULL, 10);
    }
    initialised++;
    return SUCCESS;
}

nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }

nvmlReturn_t nvmlInit(void) { return nvmlInitWithFlags(0); }

nvmlReturn_t nvmlShutdown(void) {
    if (!initialised) {
        return ERROR_UNINITIALIZED;
    }
    initialised--;
    return SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case SUCCESS:
        return "Success";
    case ERROR_NOT_SUPPORTED:
        return "Not Supported";
    case ERROR_DRIVER_NOT_LOADED:
        return "Driver Not Loaded";
    default:
        return "Unknown Error";
    }
}

/* System */

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    return answer_string(lookup("driver"), version, length);
}

nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length) {
    return answer_string(lookup("nvml"), version, length);
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *version) {
    return answer_uint(lookup("cuda"), (unsigned int *)version);
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *version) {
    return answer_uint(lookup("cuda"), (unsigned int *)version);
}

/* Devices */

static nvmlReturn_t device_count(unsigned int *count) {
    nvmlReturn_t result = answer_uint(lookup("count"), count);
    if (result == SUCCESS && *count > MAX_DEVICES) {
        *count = MAX_DEVICES;
    }
    return result;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) { return device_count(count); }

nvmlReturn_t nvmlDeviceGetCount(unsigned int *count) { return device_count(count); }

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    unsigned int count = 0;
    nvmlReturn_t result = device_count(&count);
    if (result != SUCCESS) {
        return result;
    }
    if (index >= count || device == NULL) {
        return ERROR_INVALID_ARGUMENT;
    }
    devices[index].index = (int)index;
    const char *handle = device_value(&devices[index], "handle");
    if (handle != NULL && handle[0] == '!') {
        return (nvmlReturn_t)strtol(handle + 1, NULL, 10);
    }
    *device = &devices[index];
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device) {
    return nvmlDeviceGetHandleByIndex_v2(index, device);
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    if (device == NULL) {
        return ERROR_INVALID_ARGUMENT;
    }
    return answer_string(device_value(device, "name"), name, length);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    if (device == NULL) {
        return ERROR_INVALID_ARGUMENT;
    }
    return answer_string(device_value(device, "uuid"), uuid, length);
}

static nvmlReturn_t memory_figures(nvmlDevice_t device, unsigned long long figures[3]) {
    /* total, used, reserved; a missing reserved figure is 0 */
    if (device == NULL) {
        return ERROR_INVALID_ARGUMENT;
    }
    nvmlReturn_t result = answer_ull(device_value(device, "memory_total"), &figures[0]);
    if (result == SUCCESS) {
        result = answer_ull(device_value(device, "memory_used"), &figures[1]);
    }
    figures[2] = 0;
    if (result == SUCCESS && device_value(device, "memory_reserved") != NULL) {
        result = answer_ull(device_value(device, "memory_reserved"), &figures[2]);
    }
    return result;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    unsigned long long figures[3];
    nvmlReturn_t result = memory_figures(device, figures);
    if (result != SUCCESS) {
        return result;
    }
    /* Version 1 counts the reserved memory as used. */
    memory->total = figures[0];
    memory->used = figures[1] + figures[2];
    memory->free = figures[0] - memory->used;
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
    if (memory == NULL || memory->version != MEMORY_V2_VERSION) {
        return ERROR_ARGUMENT_VERSION_MISMATCH;
    }
    unsigned long long figures[3];
    nvmlReturn_t result = memory_figures(device, figures);
    if (result != SUCCESS) {
        return result;
    }
    memory->total = figures[0];
    memory->used = figures[1];
    memory->reserved = figures[2];
    memory->free = figures[0] - figures[1] - figures[2];
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization) {
    if (utilization == NULL) {
        return ERROR_INVALID_ARGUMENT;
    }
    nvmlReturn_t result = device_uint(device, "util_gpu", &utilization->gpu);
    if (result == SUCCESS) {
        result = device_uint(device, "util_mem", &utilization->memory);
    }
    return result;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, unsigned int *temp) {
    if (sensor != 0) {
        return ERROR_NOT_SUPPORTED;
    }
    return device_uint(device, "temperature", temp);
}

nvmlReturn_t nvmlDeviceGetTemperatureV(nvmlDevice_t device, nvmlTemperature_t *temperature) {
    if (temperature == NULL || temperature->version != TEMPERATURE_V1_VERSION) {
        return ERROR_ARGUMENT_VERSION_MISMATCH;
    }
    unsigned int value = 0;
    nvmlReturn_t result = nvmlDeviceGetTemperature(device, temperature->sensorType, &value);
    if (result == SUCCESS) {
        temperature->temperature = (int)value;
    }
    return result;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *milliwatts) {
    return device_uint(device, "power_mw", milliwatts);
}

nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int *milliwatts) {
    return device_uint(device, "power_limit_mw", milliwatts);
}

nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, int type, unsigned int *clock) {
    /* NVML_CLOCK_SM is 1, NVML_CLOCK_MEM is 2 */
    if (type == 1) {
        return device_uint(device, "clock_sm", clock);
    }
    if (type == 2) {
        return device_uint(device, "clock_mem", clock);
    }
    return ERROR_NOT_SUPPORTED;
}

nvmlReturn_t nvmlDeviceGetTotalEccErrors(
    nvmlDevice_t device, int errorType, int counterType, unsigned long long *count) {
    /* Only the volatile counters (counterType 0) are recorded. */
    if (device == NULL || counterType != 0) {
        return ERROR_NOT_SUPPORTED;
    }
    const char *field = errorType == 0 ? "ecc_corrected" : "ecc_uncorrected";
    return answer_ull(device_value(device, field), count);
}

nvmlReturn_t nvmlDeviceGetMigMode(
    nvmlDevice_t device, unsigned int *current, unsigned int *pending) {
    nvmlReturn_t result = device_uint(device, "mig", current);
    if (result == SUCCESS && pending != NULL) {
        *pending = *current;
    }
    return result;
}

nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, int *major, int *minor) {
    const char *text = NULL;
    if (device == NULL) {
        return ERROR_INVALID_ARGUMENT;
    }
    nvmlReturn_t result = answer(device_value(device, "cc"), &text);
    if (result != SUCCESS) {
        return result;
    }
    char *dot = NULL;
    *major = (int)strtol(text, &dot, 10);
    *minor = (dot != NULL && *dot == '.') ? (int)strtol(dot + 1, NULL, 10) : 0;
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetArchitecture(nvmlDevice_t device, unsigned int *architecture) {
    return device_uint(device, "arch", architecture);
}

/* Processes: "PID:BYTES[:GI:CI]" entries under the field name, in file order. */
static nvmlReturn_t running_processes(
    nvmlDevice_t device, const char *field, unsigned int *count, nvmlProcessInfo_t *infos) {
    if (!initialised) {
        return ERROR_UNINITIALIZED;
    }
    if (device == NULL || count == NULL) {
        return ERROR_INVALID_ARGUMENT;
    }
    char key[128];
    snprintf(key, sizeof key, "device.%d.%s", device->index, field);
    const char *error = device_value(device, field);
    if (error != NULL && error[0] == '!') {
        return (nvmlReturn_t)strtol(error + 1, NULL, 10);
    }
    nvmlProcessInfo_t found[MAX_PROCESSES];
    unsigned int found_count = 0;
    for (int i = 0; i < entry_count && found_count < MAX_PROCESSES; i++) {
        if (strcmp(keys[i], key) != 0) {
            continue;
        }
        char *rest = NULL;
        nvmlProcessInfo_t info = {0, NOT_AVAILABLE_ULL, 0xFFFFFFFFu, 0xFFFFFFFFu};
        info.pid = (unsigned int)strtoul(values[i], &rest, 10);
        if (rest != NULL && *rest == ':') {
            rest++;
            if (strncmp(rest, "NA", 2) == 0) {
                rest += 2;
            } else {
                info.usedGpuMemory = strtoull(rest, &rest, 10);
            }
        }
        if (rest != NULL && *rest == ':') {
            info.gpuInstanceId = (unsigned int)strtoul(rest + 1, &rest, 10);
        }
        if (rest != NULL && *rest == ':') {
            info.computeInstanceId = (unsigned int)strtoul(rest + 1, &rest, 10);
        }
        found[found_count++] = info;
    }
    if (found_count == 0) {
        *count = 0;
        return SUCCESS;
    }
    if (infos == NULL || *count < found_count) {
        *count = found_count;
        return ERROR_INSUFFICIENT_SIZE;
    }
    memcpy(infos, found, found_count * sizeof(nvmlProcessInfo_t));
    *count = found_count;
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(
    nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_t *infos) {
    return running_processes(device, "process", count, infos);
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(
    nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_t *infos) {
    return running_processes(device, "process", count, infos);
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(
    nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_t *infos) {
    return running_processes(device, "graphics_process", count, infos);
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v2(
    nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_t *infos) {
    return running_processes(device, "graphics_process", count, infos);
}
