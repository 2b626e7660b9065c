#!/bin/sh
# Builds the netdevsim test kernel (see netdevsim.config) from Debian's
# linux-source package at the version image/kernel.json pins, once: the
# result is cached under .cache/testkernel/ by source version and fragment.
# Usage: image/testkernel/build.sh   (prints the bzImage path last)
set -eu
cd "$(dirname "$0")/../.."
ver=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' image/kernel.json)
major=$(echo "$ver" | cut -d. -f1,2)
pkg="linux-source-$major"
sha=$(cat image/testkernel/source.sha256)
frag=image/testkernel/netdevsim.config
out=$(sh image/testkernel/path.sh)
if [ -f "$out" ]; then
	echo "$out"
	exit 0
fi
mkdir -p .cache/testkernel
deb=".cache/${pkg}_$(echo "$ver" | sed 's/:/%3a/')_all.deb"
if [ ! -f "$deb" ]; then
	echo "testkernel: downloading $pkg=$ver (about 150 MB)" >&2
	(cd .cache && apt-get download -q "$pkg=$ver" >&2)
fi
if [ "$(sha256sum "$deb" | cut -d' ' -f1)" != "$sha" ]; then
	echo "testkernel: $deb does not match image/testkernel/source.sha256; removed it" >&2
	rm -f "$deb"
	exit 1
fi
work=.cache/testkernel/work
rm -rf "$work"
mkdir -p "$work"
echo "testkernel: unpacking $pkg" >&2
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" --wildcards '*.tar.xz'
tarball=$(find "$work" -name "linux-source-*.tar.xz" | head -n1)
tar -xJf "$tarball" -C "$work"
rm -f "$tarball"
src=$(find "$work" -maxdepth 1 -type d -name "linux-source-*" | head -n1)
echo "testkernel: configuring (tinyconfig + $frag)" >&2
make -s -C "$src" ARCH=x86_64 tinyconfig >&2
"$src/scripts/kconfig/merge_config.sh" -m -O "$src" "$src/.config" "$frag" >/dev/null
make -s -C "$src" ARCH=x86_64 olddefconfig >&2
# A dependency the fragment missed silently drops an option: refuse that.
grep '^CONFIG_' "$frag" | while read -r want; do
	grep -qx "$want" "$src/.config" || { echo "testkernel: $want did not survive olddefconfig (a missing dependency?)" >&2; exit 1; }
done
jobs=$(nproc)
echo "testkernel: building bzImage with $jobs jobs (about 4 minutes on 2 cores); progress every 100 files" >&2
start=$(date +%s)
make -C "$src" ARCH=x86_64 -j"$jobs" bzImage 2>&1 | awk '/^  (CC|AS|LD|AR)/ { n++; if (n % 100 == 0) { printf "testkernel: %d files compiled\n", n; fflush() } } /error:|Error [0-9]/ { print }' >&2
test -f "$src/arch/x86/boot/bzImage" || { echo "testkernel: build failed; rerun with: make -C $src ARCH=x86_64 bzImage" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
cp "$src/arch/x86/boot/bzImage" "$out.tmp" && mv "$out.tmp" "$out"
cp "$src/.config" "$(dirname "$out")/config"
rm -rf "$work"
echo "testkernel: built in $(( $(date +%s) - start )) s" >&2
echo "$out"
