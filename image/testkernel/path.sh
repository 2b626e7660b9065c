#!/bin/sh
# Prints where build.sh caches the netdevsim test kernel: keyed by the
# pinned source version and the config fragment, so a change to either
# builds a new one. qemu/guest computes the same path.
set -eu
cd "$(dirname "$0")/../.."
ver=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' image/kernel.json)
key=$(cat image/kernel.json image/testkernel/netdevsim.config image/testkernel/source.sha256 | sha256sum | cut -c1-12)
echo ".cache/testkernel/$ver-$key/bzImage"
