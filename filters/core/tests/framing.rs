// Framing tests: chunk-split invariance for every framer.
