/* A client of a `helora serve` process: connect with a token, register the key set, one
 * request blocking, one submitted and polled; and the remote's error paths.
 * Usage: remote URL TOKEN LAYER X.f32 OUT.f32
 * OUT holds the deltas of q_proj then v_proj, twice (blocking, polled). */
#define _POSIX_C_SOURCE 199309L
#include <time.h>

#include "check.h"

static const char *modules[] = {"q_proj", "v_proj"};

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: remote URL TOKEN LAYER X.f32 OUT.f32\n");
        return 2;
    }
    const char *url = argv[1], *token = argv[2];
    uint32_t layer = (uint32_t)atoi(argv[3]);
    size_t x_len;
    float *x = read_floats(argv[4], &x_len);

    helora_params *params;
    helora_remote *remote = NULL;
    CHECK(helora_params_new(&params));
    EXPECT(HELORA_NULL_POINTER, helora_remote_connect(params, NULL, token, NULL, NULL, &remote));
    EXPECT(HELORA_NETWORK, helora_remote_connect(params, url, "hlr_not-a-token", NULL, NULL, &remote));
    EXPECT(HELORA_NETWORK, helora_remote_connect(params, url, token, "no-such-adapter", NULL, &remote));
    CHECK(helora_remote_connect(params, url, token, NULL, NULL, &remote));

    helora_buffer manifest, eval_keys, public_key;
    helora_client *client;
    CHECK(helora_remote_manifest(remote, &manifest));
    CHECK(helora_client_new(params, manifest.data, manifest.len, &client));
    size_t out_len;
    helora_request *request;
    helora_buffer bytes, reply;
    CHECK(helora_client_encrypt(client, layer, modules, 2, x, x_len, &request));
    CHECK(helora_request_output_len(request, &out_len));
    CHECK(helora_request_encode(request, &bytes));

    /* Before its key set is registered the server refuses the client's requests. */
    EXPECT(HELORA_NETWORK, helora_remote_apply(remote, bytes.data, bytes.len, &reply));
    EXPECT(HELORA_BAD_MESSAGE, helora_remote_apply(remote, bytes.data, bytes.len / 3, &reply));
    CHECK(helora_client_key_upload(client, &eval_keys, &public_key));
    CHECK(helora_remote_register(remote, eval_keys.data, eval_keys.len, public_key.data,
                                 public_key.len));

    float *out = malloc(2 * out_len * sizeof(float));
    CHECK(helora_remote_apply(remote, bytes.data, bytes.len, &reply));
    CHECK(helora_client_decrypt(client, request, reply.data, reply.len, out, out_len));
    CHECK(helora_buffer_free(&reply));

    /* The same request again, submitted; the caller polls while it is on its way. */
    helora_pending *pending;
    CHECK(helora_remote_submit(remote, bytes.data, bytes.len, &pending));
    bool ready = false;
    long polls = 0;
    while (!ready) {
        CHECK(helora_pending_ready(pending, &ready));
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
        polls++;
    }
    CHECK(helora_pending_wait(pending, &reply));
    helora_buffer again;
    EXPECT(HELORA_INVALID_ARGUMENT, helora_pending_wait(pending, &again));
    CHECK(helora_client_decrypt(client, request, reply.data, reply.len, out + out_len, out_len));
    CHECK(helora_pending_free(pending));
    EXPECT(HELORA_INVALID_HANDLE, helora_pending_ready(pending, &ready));
    write_floats(argv[5], out, 2 * out_len);

    CHECK(helora_buffer_free(&reply));
    CHECK(helora_buffer_free(&bytes));
    CHECK(helora_buffer_free(&eval_keys));
    CHECK(helora_buffer_free(&public_key));
    CHECK(helora_buffer_free(&manifest));
    CHECK(helora_request_free(request));
    CHECK(helora_client_free(client));
    CHECK(helora_remote_free(remote));
    EXPECT(HELORA_INVALID_HANDLE, helora_remote_free(remote));
    CHECK(helora_params_free(params));
    free(out);
    free(x);
    check_nothing_live();
    printf("remote round trips done after %ld polls\n", polls);
    return 0;
}
