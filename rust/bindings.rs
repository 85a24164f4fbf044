// SPDX-License-Identifier: GPL-2.0

//! Bindings generated at build time from `c_shims/bindings.h` (see Kbuild).
//!
//! Fenced off here: the rest of the crate uses the few items it needs
//! through safe wrappers in `domain.rs` and `uapi.rs`.

// `unnecessary_transmutes` is newer than rustc 1.85 (Debian's kernel
// toolchain, scripts/distro), which must not reject its name.
#![allow(unknown_lints)]
#![allow(
    dead_code,
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    improper_ctypes,
    unsafe_op_in_unsafe_fn,
    missing_docs,
    clippy::all,
    // Generated bitfield accessors; not code that sees user values.
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::as_underscore,
    clippy::cast_lossless,
    clippy::ptr_as_ptr,
    clippy::ref_as_ptr,
    clippy::undocumented_unsafe_blocks,
    unreachable_pub,
    unnecessary_transmutes
)]

use kernel::ffi;

// The path is exported by Kbuild: the file lives in the build output dir.
include!(env!("VFIO_RS_BINDINGS"));
