/* The model (in flash, read in place) and the input sequences (a section of their own, so
   that the flash budget counts them apart): paths from -DLSNN_MODEL_FILE / -DLSNN_INPUTS_FILE. */
    .section .rodata.lsnn_model, "a"
    .balign 4
    .global lsnn_model, lsnn_model_end
lsnn_model:
    .incbin LSNN_MODEL_FILE
lsnn_model_end:

    .section .lsnn_inputs, "a"
    .balign 4
    .global lsnn_inputs, lsnn_inputs_end
lsnn_inputs:
    .incbin LSNN_INPUTS_FILE
lsnn_inputs_end:
