//! The NFP-style microengine instruction set: one definition shared by the NFP backend (which encodes) and the NFP simulator (which decodes and executes).
