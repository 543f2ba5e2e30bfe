/* Helpers of the C tests: a failed call ends the program with its code and message. */
#ifndef HELORA_TEST_CHECK_H
#define HELORA_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helora.h"

/* The call must succeed. */
#define CHECK(call)                                                                      \
    do {                                                                                 \
        helora_status check_status_ = (call);                                            \
        if (check_status_ != HELORA_OK) {                                                \
            fprintf(stderr, "%s:%d: %s: %s: %s\n", __FILE__, __LINE__, #call,            \
                    helora_status_name(check_status_), helora_last_error());             \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

/* The call must fail with `code` and leave a message; prints both. */
#define EXPECT(code, call)                                                               \
    do {                                                                                 \
        helora_status expect_status_ = (call);                                           \
        if (expect_status_ != (code) || helora_last_error()[0] == '\0') {                \
            fprintf(stderr, "%s:%d: %s: %s (expected %s): \"%s\"\n", __FILE__, __LINE__, \
                    #call, helora_status_name(expect_status_), helora_status_name(code),  \
                    helora_last_error());                                                \
            exit(1);                                                                     \
        }                                                                                \
        printf("%s %s: %s\n", helora_status_name(expect_status_), #call,                 \
               helora_last_error());                                                     \
    } while (0)

/* Every handle and buffer the program made is freed (helora's registry would keep a
 * forgotten one reachable, so a memory checker alone does not see it). */
static inline void check_nothing_live(void) {
    size_t handles = 0, buffers = 0;
    CHECK(helora_live_count(&handles, &buffers));
    if (handles != 0 || buffers != 0) {
        fprintf(stderr, "%zu handles and %zu buffers were never freed\n", handles, buffers);
        exit(1);
    }
}

/* Little-endian f32 files (the test harness writes and reads them). */
static inline float *read_floats(const char *path, size_t *count) {
    FILE *file = fopen(path, "rb");
    if (!file) {
        perror(path);
        exit(1);
    }
    fseek(file, 0, SEEK_END);
    long bytes = ftell(file);
    fseek(file, 0, SEEK_SET);
    *count = (size_t)bytes / sizeof(float);
    float *values = malloc((size_t)bytes);
    if (!values || fread(values, sizeof(float), *count, file) != *count) {
        perror(path);
        exit(1);
    }
    fclose(file);
    return values;
}

static inline void write_floats(const char *path, const float *values, size_t count) {
    FILE *file = fopen(path, "wb");
    if (!file || fwrite(values, sizeof(float), count, file) != count) {
        perror(path);
        exit(1);
    }
    fclose(file);
}

#endif
