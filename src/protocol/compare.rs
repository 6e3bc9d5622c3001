//! Comparison family (being written): MSB/DReLU, ReLU, select, max, maxpool.
