"""Where the memory lives: analyses of frozen agents (``snn-icl analyze``).

    states        state components (LSNN a, v, z, r, zeta; LSTM h, c; transformer kv cache),
                  rollout hooks that record, reset or swap them, batched episode runs
    decoding      cross-validated ridge decoders of the platform (folds over episodes)
    ablations     resets at trial starts, beta = 0, and swaps between episodes at trial 2
    place_fields  rate maps, Skaggs information, circular-shift shuffles
    attention     transformer replay and attention retrieval of earlier platform steps
    figures       the figures of an analysis run
    run           everything on one or more checkpoints -> analysis.json + figures
"""
