# shellcheck shell=bash
# Common paths for every script. Source it; it sets no options.
#
# VFIO_RS_CACHE: where the toolchain, kernel source and built kernels live,
# outside the repository so a fresh clone reuses them.
VFIO_RS_CACHE=${VFIO_RS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vfio-type1-rs}
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The Linux version to build the test kernels from and test against:
# KERNEL=7.2 make check. 7.3 is the default and the one CI runs; each
# version has its own source tree, kernel builds and out/ directory.
KERNEL_VERSION_DEFAULT=7.3
KERNEL_VERSION_WANT=${KERNEL:-$KERNEL_VERSION_DEFAULT}
KERNEL_VERSIONS_SUPPORTED="7.3 7.2 6.12"
# Versions being ported, not supported yet (README, Kernels): selectable
# with VFIO_RS_EXPERIMENTAL=1 (none at the moment).
KERNEL_VERSIONS_EXPERIMENTAL=""
BINDGEN_VERSION=0.72.1
LIBCLANG_VERSION=18.1.1

TOOLS_DIR=$VFIO_RS_CACHE/tools
DEBS_DIR=$VFIO_RS_CACHE/debs
SRC_DIR=$VFIO_RS_CACHE/src
BUILD_DIR=$VFIO_RS_CACHE/build
# QEMU >= 10.2 for arm64 (scripts/setup, 2d): only the two-SMMU VM uses it.
QEMU11_DIR=$VFIO_RS_CACHE/qemu11
# Debian's arm64 QEMU for the QEMU client in the arm64 VM (setup, 2e).
QEMU_ARM64_DIR=$VFIO_RS_CACHE/qemu-arm64
# A trixie root with Debian's kernel toolchain (scripts/distro): building
# against Debian's own kernel (KERNEL_FLAVOUR=debian).
DISTRO_ROOT=$VFIO_RS_CACHE/trixie-root
# Build products and logs: out/ for the default kernel, out/linux-V/ else.
OUT_DIR=$REPO_ROOT/out
[ "$KERNEL_VERSION_WANT" = "$KERNEL_VERSION_DEFAULT" ] || OUT_DIR=$REPO_ROOT/out/linux-$KERNEL_VERSION_WANT

# The kernel's Rust support needs these three on PATH / in the environment.
export PATH=$TOOLS_DIR/bindgen/bin:$PATH
export LIBCLANG_PATH=$TOOLS_DIR/venv/lib/python3/site-packages/clang/native
if [ -d "$TOOLS_DIR/venv/lib" ]; then
  for d in "$TOOLS_DIR"/venv/lib/python3*/site-packages/clang/native; do
    [ -d "$d" ] && LIBCLANG_PATH=$d
  done
fi
export RUST_LIB_SRC=$TOOLS_DIR/rust-src/usr/lib/rustlib/src/rust/library

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

case " $KERNEL_VERSIONS_SUPPORTED " in
  *" $KERNEL_VERSION_WANT "*) ;;
  *)
    case " $KERNEL_VERSIONS_EXPERIMENTAL " in
      *" $KERNEL_VERSION_WANT "*) [ -n "${VFIO_RS_EXPERIMENTAL:-}" ] ||
        die "KERNEL=$KERNEL_VERSION_WANT is being ported, not supported yet (VFIO_RS_EXPERIMENTAL=1 to build its kernels anyway; see README, Kernels)" ;;
      *) die "KERNEL=$KERNEL_VERSION_WANT is not supported (supported: $KERNEL_VERSIONS_SUPPORTED; see README, Kernels)" ;;
    esac ;;
esac

# The kernel source tree of KERNEL_VERSION_WANT extracted by setup
# (pristine; builds use O=). Caches from before versions were selectable
# name the 7.3 tree in .current.
kernel_src() {
  local d
  d=$(cat "$SRC_DIR/.current-$KERNEL_VERSION_WANT" 2>/dev/null) ||
    { [ "$KERNEL_VERSION_WANT" = 7.3 ] && d=$(cat "$SRC_DIR/.current" 2>/dev/null); } || return 1
  [ -d "$d" ] && printf '%s\n' "$d"
}

# The Linux patches the test kernels carry: patches/linux/*.patch, fixes
# of vfio core bugs the suite exposes (README, "vfio core patches").
# VFIO_RS_CORE_PATCHES=0 builds the kernels as released, to show what the
# bugs do (its own kernel builds: the patch set is part of the cache key).
VFIO_RS_CORE_PATCHES=${VFIO_RS_CORE_PATCHES:-1}
# Everything built against unpatched kernels goes apart.
[ "$VFIO_RS_CORE_PATCHES" != 0 ] || OUT_DIR=$OUT_DIR/unpatched

# The source tree build-kernel builds from: the pristine tree, or a
# hard-linked copy of it with patches/linux applied (each file a patch
# touches is copied before it is patched, so the pristine tree stays
# pristine). Made once per source and patch set; prints its path.
kernel_build_src() {
  local src dst p f
  src=$(kernel_src) || return 1
  if [ "$VFIO_RS_CORE_PATCHES" = 0 ]; then
    printf '%s\n' "$src"
    return
  fi
  # Keyed by the diffs alone: rewording a patch's message rebuilds nothing.
  dst=$src-patched-$(sed -n '/^--- a\//,$p' "$REPO_ROOT"/patches/linux/*.patch | sha256sum | cut -c1-10)
  (
    flock 8
    [ -f "$dst/.vfio-rs-patched" ] && exit 0
    log "kernel source: applying patches/linux to a linked copy of $(basename "$src")"
    rm -rf "$dst"
    cp -al "$src" "$dst"
    for p in "$REPO_ROOT"/patches/linux/*.patch; do
      for f in $(sed -n 's#^+++ b/\([^[:space:]]*\).*#\1#p' "$p"); do
        cp "$dst/$f" "$dst/$f.copy" && mv "$dst/$f.copy" "$dst/$f"
      done
      patch -s -p1 --no-backup-if-mismatch -d "$dst" <"$p" ||
        die "$(basename "$p") does not apply to $(basename "$src")"
    done
    touch "$dst/.vfio-rs-patched"
  ) 8>"$dst.lock" || return 1
  printf '%s\n' "$dst"
}

# Make variables for building against the test kernel of (ARCH, FLAVOUR),
# one word each: the arch, its cross compiler, and for the debug flavour
# clang-19 (the kernel allows KASAN beside Rust only when C is built by
# clang; bookworm ships clang-19).
kmake_vars() {
  case $1 in
    x86_64) echo ARCH=x86_64 ;;
    arm64) echo ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- ;;
    *) die "unknown arch '$1' (x86_64 or arm64)" ;;
  esac
  [ "${2:-normal}" != debug ] || echo LLVM=-19
  # Debian's kernel: its compiler and release string (its .kernelvariables),
  # in the trixie root (distro_run).
  # debian-16k: its arm64 16 KiB-page flavour.
  case ${2:-normal} in
    debian | debian-16k)
      case $1 in
        x86_64) echo CROSS_COMPILE=x86_64-linux-gnu- CC=x86_64-linux-gnu-gcc-14 ;;
        arm64) echo CC=aarch64-linux-gnu-gcc-14 CROSS_COMPILE_COMPAT=arm-linux-gnueabihf- ;;
      esac
      echo "HOSTCC=gcc-14 KERNELRELEASE=$(debian_release "$1" "$2")" ;;
  esac
}

# Debian's release string for (ARCH, FLAVOUR): 7.3.4+deb13-amd64, -arm64,
# -arm64-16k (FLAVOUR debian-16k, arm64 only).
debian_release() {
  local da
  case $1 in x86_64) da=amd64 ;; arm64) da=arm64 ;; *) die "unknown arch '$1'" ;; esac
  case ${2:-debian} in
    debian) ;;
    debian-16k) [ "$1" = arm64 ] || die "Debian's 16k flavour is arm64 only"; da=$da-16k ;;
    *) die "not a Debian flavour: '$2'" ;;
  esac
  echo "7.3.4+deb13-$da"
}

# Runs a command in the trixie root: a private mount namespace with the
# repository, the cache, /dev and /proc bound at their own paths, then
# chroot, with a clean environment (the host's RUST_LIB_SRC, LIBCLANG_PATH
# and PATH name host tools).
distro_run() {
  [ -x "$DISTRO_ROOT/usr/bin/rustc" ] || die "no trixie root in $DISTRO_ROOT: run scripts/distro toolchain"
  R=$DISTRO_ROOT A=$REPO_ROOT C=$VFIO_RS_CACHE unshare -m --propagation private -- /bin/sh -c '
    for d in "$A" "$C"; do mkdir -p "$R$d"; mount --bind "$d" "$R$d"; done
    mount --bind /dev "$R/dev"
    mount -t proc proc "$R/proc"
    exec chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"' sh "$@"
}

# Builds the external module in SRC (a directory with its Kbuild) against
# the kernel build tree KDIR into OUT: out of tree with MO= where kbuild has
# it (Linux 6.13 on); before, from a copy of ITEMS (entries of SRC, space
# separated) in OUT/src, so that no object lands in the repository. The
# remaining arguments go to make.
#   kmake_external KDIR SRC OUT ITEMS MAKE-ARGS...
kmake_external() {
  local kdir=$1 src=$2 out=$3 items=$4 i
  shift 4
  if [ -f "$kdir/.vfio-rs-distro" ]; then
    # Debian's kernel (scripts/distro): its toolchain, in the trixie root.
    distro_run make -s -C "$kdir" M="$src" MO="$out" "$@" modules
  elif grep -q 'origin MO' "$(kernel_src)/Makefile"; then
    make -s -C "$kdir" M="$src" MO="$out" "$@" modules
  else
    mkdir -p "$out/src"
    for i in $items; do rsync -a "$src/$i" "$out/src/"; done
    make -s -C "$kdir" M="$out/src" "$@" modules && cp "$out"/src/*.ko "$out/"
  fi
}
