// The round trip of tests/c/roundtrip.c through helora.hpp's RAII wrappers, linked
// against the static library; a failed call throws.
// Usage: roundtrip_cpp ADAPTER_DIR LAYER X.f32 OUT.f32
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>

#include "helora.hpp"

static int round_trip(int argc, char **argv) {
    if (argc != 5) {
        std::cerr << "usage: roundtrip_cpp ADAPTER_DIR LAYER X.f32 OUT.f32\n";
        return 2;
    }
    try {
        std::ifstream input(argv[3], std::ios::binary);
        std::vector<char> raw((std::istreambuf_iterator<char>(input)), {});
        std::vector<float> x(raw.size() / sizeof(float));
        std::copy(raw.begin(), raw.end(), reinterpret_cast<char *>(x.data()));
        auto layer = static_cast<uint32_t>(std::atoi(argv[2]));

        helora::Params params;
        helora::Server server(params, argv[1], false);
        helora::Buffer manifest = server.manifest();
        helora::Client client(params, manifest);
        helora::Buffer eval_keys, public_key;
        client.key_upload(eval_keys, public_key);
        server.register_client(7, eval_keys, public_key);
        helora::Request request = client.encrypt(layer, {"q_proj", "v_proj"}, x);
        helora::Buffer reply = server.apply(7, request.encode());
        std::vector<float> out = client.decrypt(request, reply);

        // An error is an exception with the code and the message.
        try {
            client.encrypt(layer, {"q_proj"}, std::vector<float>(x.size() + 1));
            std::cerr << "a wrong size was accepted\n";
            return 1;
        } catch (const helora::Error &e) {
            if (e.status != HELORA_WRONG_SIZE) throw;
            std::cout << "caught: " << e.what() << "\n";
        }

        std::ofstream output(argv[4], std::ios::binary);
        output.write(reinterpret_cast<const char *>(out.data()),
                     static_cast<std::streamsize>(out.size() * sizeof(float)));
        std::cout << "round trip done: " << out.size() << " deltas\n";
        return 0;
    } catch (const std::exception &e) {
        std::cerr << e.what() << "\n";
        return 1;
    }
}

int main(int argc, char **argv) {
    int status = round_trip(argc, argv);
    // Every wrapper freed what it held.
    size_t handles = 1, buffers = 1;
    helora::check(helora_live_count(&handles, &buffers));
    if (status == 0 && (handles != 0 || buffers != 0)) {
        std::cerr << handles << " handles and " << buffers << " buffers were never freed\n";
        return 1;
    }
    return status;
}
