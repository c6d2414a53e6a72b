"""The detection pipeline of a line, pure and synchronous: one factory, the detectors, the
alarm table, the fusion; the same objects live and in offline replay."""
