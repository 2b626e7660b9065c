#!/bin/sh
# The release version: the nearest vX.Y.Z tag (git describe), else
# 0.0.N-gHASH with N the commit count, so that versions order (a later
# build is never taken for a downgrade); -dirty for uncommitted changes.
v=$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null) && { echo "$v"; exit 0; }
n=$(git rev-list --count HEAD 2>/dev/null) || { echo 0.0.0-dev; exit 0; }
h=$(git rev-parse --short HEAD)
d=""
git diff --quiet HEAD 2>/dev/null || d="-dirty"
echo "0.0.$n-g$h$d"
