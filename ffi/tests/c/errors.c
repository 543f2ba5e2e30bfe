/* Every error path returns its code and a message, and changes nothing: NULL pointers,
 * wrong sizes, garbage bytes, unknown names, handles used after free or of another kind,
 * double frees, a client the server does not know, a missing file.
 * Usage: errors ADAPTER_DIR SCRATCH_DIR */
#include <math.h>

#include "check.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: errors ADAPTER_DIR SCRATCH_DIR\n");
        return 2;
    }
    const char *modules[] = {"q_proj", "v_proj"};
    const char *unknown[] = {"o_proj"};
    uint8_t garbage[64];
    for (size_t k = 0; k < sizeof garbage; k++) garbage[k] = (uint8_t)(k * 37 + 11);
    helora_buffer empty = {NULL, 0};

    /* NULL out-pointers and handles. */
    helora_params *params = NULL;
    EXPECT(HELORA_NULL_POINTER, helora_params_new(NULL));
    CHECK(helora_params_new(&params));
    if (helora_last_error()[0] != '\0') {
        fprintf(stderr, "a successful call left a message\n");
        return 1;
    }
    uint64_t id;
    EXPECT(HELORA_NULL_POINTER, helora_params_id(NULL, &id));
    EXPECT(HELORA_NULL_POINTER, helora_params_id(params, NULL));
    helora_server *server = (helora_server *)1;
    EXPECT(HELORA_NULL_POINTER, helora_server_load(params, NULL, false, &server));
    if (server != NULL) {
        fprintf(stderr, "a failed call left a handle in its out-pointer\n");
        return 1;
    }
    char missing[4096];
    snprintf(missing, sizeof missing, "%s/no-such-adapter", argv[2]);
    EXPECT(HELORA_INVALID_ARGUMENT, helora_server_load(params, missing, false, &server));
    CHECK(helora_server_load(params, argv[1], false, &server));

    /* A manifest that is not one. */
    helora_client *client;
    EXPECT(HELORA_NULL_POINTER, helora_client_new(params, NULL, 10, &client));
    EXPECT(HELORA_BAD_MESSAGE, helora_client_new(params, garbage, sizeof garbage, &client));
    helora_buffer manifest;
    EXPECT(HELORA_NULL_POINTER, helora_server_manifest(server, NULL));
    CHECK(helora_server_manifest(server, &manifest));
    CHECK(helora_client_new(params, manifest.data, manifest.len, &client));

    /* Keys: garbage is refused by the server. */
    helora_buffer eval_keys, public_key;
    EXPECT(HELORA_NULL_POINTER, helora_client_key_upload(client, NULL, &public_key));
    CHECK(helora_client_key_upload(client, &eval_keys, &public_key));
    EXPECT(HELORA_BAD_MESSAGE, helora_server_register(server, 1, garbage, sizeof garbage,
                                                  public_key.data, public_key.len));
    EXPECT(HELORA_NULL_POINTER, helora_server_register(server, 1, NULL, 5, public_key.data,
                                                       public_key.len));

    /* Encryption: sizes, names, values. */
    size_t d_in, d_out;
    EXPECT(HELORA_INVALID_ARGUMENT, helora_client_shape(client, 0, "o_proj", &d_in, &d_out));
    CHECK(helora_client_shape(client, 0, "q_proj", &d_in, &d_out));
    float *x = calloc(d_in + 1, sizeof(float));
    for (size_t k = 0; k < d_in; k++) x[k] = (float)k / (float)d_in - 0.5f;
    helora_request *request = NULL;
    EXPECT(HELORA_WRONG_SIZE, helora_client_encrypt(client, 0, modules, 2, x, d_in + 1, &request));
    EXPECT(HELORA_WRONG_SIZE, helora_client_encrypt(client, 0, modules, 2, x, d_in - 1, &request));
    EXPECT(HELORA_NULL_POINTER, helora_client_encrypt(client, 0, modules, 2, NULL, d_in, &request));
    EXPECT(HELORA_NULL_POINTER, helora_client_encrypt(client, 0, NULL, 2, x, d_in, &request));
    EXPECT(HELORA_INVALID_ARGUMENT, helora_client_encrypt(client, 0, modules, 0, x, d_in, &request));
    EXPECT(HELORA_INVALID_ARGUMENT, helora_client_encrypt(client, 0, unknown, 1, x, d_in, &request));
    EXPECT(HELORA_INVALID_ARGUMENT, helora_client_encrypt(client, 999, modules, 2, x, d_in, &request));
    x[3] = NAN;
    EXPECT(HELORA_INVALID_ARGUMENT, helora_client_encrypt(client, 0, modules, 2, x, d_in, &request));
    x[3] = 0.25f;
    CHECK(helora_client_encrypt(client, 0, modules, 2, x, d_in, &request));
    helora_buffer bytes;
    CHECK(helora_request_encode(request, &bytes));

    /* The server: an unregistered client, a garbage request. */
    helora_buffer reply;
    EXPECT(HELORA_REFUSED, helora_server_apply(server, 1, bytes.data, bytes.len, &reply));
    CHECK(helora_server_register(server, 1, eval_keys.data, eval_keys.len, public_key.data,
                                 public_key.len));
    EXPECT(HELORA_BAD_MESSAGE, helora_server_apply(server, 1, garbage, sizeof garbage, &reply));
    EXPECT(HELORA_NULL_POINTER, helora_server_apply(server, 1, bytes.data, bytes.len, NULL));
    CHECK(helora_server_apply(server, 1, bytes.data, bytes.len, &reply));

    /* Decryption: wrong sizes, garbage replies, a reply cut short. */
    size_t out_len;
    CHECK(helora_request_output_len(request, &out_len));
    float *out = calloc(out_len + 1, sizeof(float));
    EXPECT(HELORA_WRONG_SIZE, helora_client_decrypt(client, request, reply.data, reply.len, out, out_len + 1));
    EXPECT(HELORA_WRONG_SIZE, helora_client_decrypt(client, request, reply.data, reply.len, out, out_len - 1));
    EXPECT(HELORA_NULL_POINTER, helora_client_decrypt(client, request, reply.data, reply.len, NULL, out_len));
    EXPECT(HELORA_BAD_MESSAGE, helora_client_decrypt(client, request, garbage, sizeof garbage, out, out_len));
    EXPECT(HELORA_BAD_MESSAGE, helora_client_decrypt(client, request, reply.data, reply.len / 2, out, out_len));
    EXPECT(HELORA_BAD_MESSAGE, helora_client_decrypt(client, request, NULL, 0, out, out_len));
    CHECK(helora_client_decrypt(client, request, reply.data, reply.len, out, out_len));

    /* Key files: a missing one, one that is not a key file, a directory that is not there. */
    char path[4096];
    snprintf(path, sizeof path, "%s/missing.key", argv[2]);
    helora_client *loaded = NULL;
    EXPECT(HELORA_IO, helora_client_load_keys(params, manifest.data, manifest.len, path, &loaded));
    snprintf(path, sizeof path, "%s/not-a-key", argv[2]);
    FILE *file = fopen(path, "w");
    fputs("{\"format\": \"something else\"}", file);
    fclose(file);
    EXPECT(HELORA_BAD_MESSAGE, helora_client_load_keys(params, manifest.data, manifest.len, path, &loaded));
    snprintf(path, sizeof path, "%s/no-such-dir/client.key", argv[2]);
    EXPECT(HELORA_IO, helora_client_save_keys(client, path));

    /* Handles of another kind, used after free, freed twice; buffers freed twice. */
    helora_request *other;
    EXPECT(HELORA_INVALID_HANDLE, helora_client_encrypt((helora_client *)request, 0, modules, 2, x, d_in, &other));
    EXPECT(HELORA_INVALID_HANDLE, helora_server_free((helora_server *)client));
    helora_buffer copy = bytes;
    CHECK(helora_buffer_free(&bytes));
    if (bytes.data != NULL || bytes.len != 0) {
        fprintf(stderr, "a freed buffer was not emptied\n");
        return 1;
    }
    EXPECT(HELORA_INVALID_HANDLE, helora_buffer_free(&copy));
    CHECK(helora_buffer_free(&empty));
    CHECK(helora_buffer_free(NULL));
    CHECK(helora_request_free(request));
    EXPECT(HELORA_INVALID_HANDLE, helora_request_output_len(request, &out_len));
    EXPECT(HELORA_INVALID_HANDLE, helora_request_free(request));
    CHECK(helora_client_free(client));
    EXPECT(HELORA_INVALID_HANDLE, helora_client_shape(client, 0, "q_proj", &d_in, &d_out));
    EXPECT(HELORA_INVALID_HANDLE, helora_client_free(client));
    CHECK(helora_client_free(NULL));

    if (strcmp(helora_status_name(12345), "HELORA_UNKNOWN") != 0) {
        fprintf(stderr, "an unknown code has a name\n");
        return 1;
    }
    CHECK(helora_buffer_free(&reply));
    CHECK(helora_buffer_free(&eval_keys));
    CHECK(helora_buffer_free(&public_key));
    CHECK(helora_buffer_free(&manifest));
    CHECK(helora_server_free(server));
    CHECK(helora_params_free(params));
    free(out);
    free(x);
    check_nothing_live();
    printf("every error path checked\n");
    return 0;
}
