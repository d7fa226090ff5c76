#!/bin/sh
# The operator image's root filesystem: the binary, the shared libraries it loads (if it is
# dynamic), CA certificates, a passwd/group naming the non-root user, and the licences of the
# Debian packages the copied files come from. Nothing else: no shell, no package manager.
# This is what distroless images hold, assembled from the packages installed on the build
# machine, so the libraries are the ones the binary was linked against.
#
# Both builds use it, so their contents cannot differ: tests/tools/image.sh (no Docker) and the
# Dockerfile's build stage (then `COPY --from=build /rootfs/ /` onto scratch). POSIX sh, because
# the Dockerfile runs it in a Debian image.
#
# Usage: image-rootfs.sh ROOTFS BINARY
#   ROOTFS must not exist yet. Needs: ldd (libc-bin), dpkg, ca-certificates.
set -eu

rootfs=$1 binary=$2
[ ! -e "$rootfs" ] || { echo "image-rootfs.sh: $rootfs exists" >&2; exit 1; }
[ -x "$binary" ] || { echo "image-rootfs.sh: no executable $binary" >&2; exit 1; }
certs=/etc/ssl/certs/ca-certificates.crt
[ -s "$certs" ] || { echo "image-rootfs.sh: $certs missing (install ca-certificates)" >&2; exit 1; }

mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/usr/share/doc"
cp "$binary" "$rootfs/changeorder-operator"
chmod 0755 "$rootfs/changeorder-operator"
cp "$certs" "$rootfs/etc/ssl/certs/ca-certificates.crt"
packages=ca-certificates

# ldd lists each library as "name => /path (addr)" and the loader as "/path (addr)"; a static
# binary gets "not a dynamic executable" (exit 1) or "statically linked". Each file is copied
# to the path the loader will look for it at (Debian's loader searches the multiarch
# directories without an ld.so.cache).
libs=$(ldd "$binary" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }') || true
for lib in $libs; do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
  chmod 0755 "$rootfs$lib"
  # The owning package, for its licence; merged /usr means dpkg may know the other spelling.
  pkg=$(dpkg -S "$lib" 2>/dev/null || dpkg -S "$(readlink -f "$lib")" 2>/dev/null ||
    dpkg -S "/usr$lib" 2>/dev/null) || { echo "image-rootfs.sh: no package owns $lib" >&2; exit 1; }
  packages="$packages ${pkg%%:*}"
done
for pkg in $(printf '%s\n' $packages | sort -u); do
  mkdir -p "$rootfs/usr/share/doc/$pkg"
  cp "/usr/share/doc/$pkg/copyright" "$rootfs/usr/share/doc/$pkg/copyright"
done

# 65532 is distroless's `nonroot`, which the chart's securityContext also names. No home
# directory and no login shell exist in the image.
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
  'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin' >"$rootfs/etc/passwd"
printf '%s\n' 'root:x:0:' 'nonroot:x:65532:' >"$rootfs/etc/group"
# Name resolution from /etc/hosts first, then DNS (kubelet provides both files).
printf '%s\n' 'hosts: files dns' >"$rootfs/etc/nsswitch.conf"
