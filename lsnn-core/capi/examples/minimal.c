/* The README's example of lsnn-core's C API (scripts/firmware-check.sh compiles it). */
#include <stdio.h>
#include "lsnn.h"

extern const uint8_t model[];        /* a file written by `lsnn-host export`, in flash */
extern const size_t model_len;
extern uint32_t read_input_spikes(uint32_t *channels);  /* this step's channels, ascending */
extern void act_on(const float *y);
static _Alignas(LSNN_NET_ALIGN) uint8_t memory[16 * 1024];

int run(void) {
    lsnn_model_info info;
    lsnn_net *net;
    lsnn_status s = lsnn_model_check(model, model_len, &info);
    if (s == LSNN_OK && info.n_out > 16) s = LSNN_ERR_BUFFER_TOO_SMALL;
    if (s == LSNN_OK) s = lsnn_net_init(model, model_len, memory, sizeof memory, &net);
    while (s == LSNN_OK) {               /* one time step per iteration */
        uint32_t channels[256], n = read_input_spikes(channels), spikes;
        float y[16];
        s = lsnn_net_step(net, channels, n, &spikes);
        if (s == LSNN_OK) s = lsnn_net_outputs(net, y, info.n_out);
        if (s == LSNN_OK) act_on(y);
    }
    printf("lsnn: %s\n", lsnn_status_message(s));
    return 1;
}
