/* A full round trip in one process: server (an adapter directory), client (keys,
 * encryption, decryption), the request and reply as bytes between them; then the same
 * with a client loaded from its saved key file.
 * Usage: roundtrip ADAPTER_DIR LAYER X.f32 OUT.f32 KEY_FILE
 * OUT holds the deltas of q_proj then v_proj, twice (fresh client, loaded client). */
#include <sys/stat.h>

#include "check.h"

static const char *modules[] = {"q_proj", "v_proj"};

/* Encrypts x for both modules, has the server apply it, decrypts into out. */
static void round_trip(helora_client *client, helora_server *server, uint32_t layer,
                       const float *x, size_t x_len, float *out, size_t out_len) {
    helora_request *request = NULL;
    CHECK(helora_client_encrypt(client, layer, modules, 2, x, x_len, &request));
    size_t len = 0;
    CHECK(helora_request_output_len(request, &len));
    if (len != out_len) {
        fprintf(stderr, "output length %zu, expected %zu\n", len, out_len);
        exit(1);
    }
    helora_buffer bytes, reply;
    CHECK(helora_request_encode(request, &bytes));
    CHECK(helora_server_apply(server, 1, bytes.data, bytes.len, &reply));
    CHECK(helora_client_decrypt(client, request, reply.data, reply.len, out, out_len));
    CHECK(helora_buffer_free(&bytes));
    CHECK(helora_buffer_free(&reply));
    CHECK(helora_request_free(request));
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: roundtrip ADAPTER_DIR LAYER X.f32 OUT.f32 KEY_FILE\n");
        return 2;
    }
    uint32_t layer = (uint32_t)atoi(argv[2]);
    size_t x_len;
    float *x = read_floats(argv[3], &x_len);

    helora_params *params;
    helora_server *server;
    helora_client *client;
    helora_buffer manifest, eval_keys, public_key;
    CHECK(helora_params_new(&params));
    CHECK(helora_server_load(params, argv[1], false, &server));
    CHECK(helora_server_manifest(server, &manifest));
    CHECK(helora_client_new(params, manifest.data, manifest.len, &client));
    CHECK(helora_client_key_upload(client, &eval_keys, &public_key));
    CHECK(helora_server_register(server, 1, eval_keys.data, eval_keys.len, public_key.data,
                                 public_key.len));

    size_t d_in, q_out, v_out;
    CHECK(helora_client_shape(client, layer, "q_proj", &d_in, &q_out));
    CHECK(helora_client_shape(client, layer, "v_proj", &d_in, &v_out));
    size_t out_len = q_out + v_out;
    float *out = malloc(2 * out_len * sizeof(float));
    round_trip(client, server, layer, x, x_len, out, out_len);

    /* The saved key is the owner's alone, and grows the same client back. */
    CHECK(helora_client_save_keys(client, argv[5]));
    struct stat info;
    if (stat(argv[5], &info) != 0 || (info.st_mode & 0777) != 0600) {
        fprintf(stderr, "the key file's mode is %o, expected 600\n", info.st_mode & 0777);
        return 1;
    }
    helora_client *loaded;
    CHECK(helora_client_load_keys(params, manifest.data, manifest.len, argv[5], &loaded));
    round_trip(loaded, server, layer, x, x_len, out + out_len, out_len);
    write_floats(argv[4], out, 2 * out_len);

    CHECK(helora_client_free(loaded));
    CHECK(helora_client_free(client));
    CHECK(helora_buffer_free(&eval_keys));
    CHECK(helora_buffer_free(&public_key));
    CHECK(helora_buffer_free(&manifest));
    CHECK(helora_server_free(server));
    CHECK(helora_params_free(params));
    free(out);
    free(x);
    check_nothing_live();
    printf("round trip done: %zu deltas\n", 2 * out_len);
    return 0;
}
