#!/usr/bin/env bash
# Builds the images of the local mesh (deploy/compose) and of the Kubernetes manifests, from what this machine
# has (no image can be pulled here):
#
#   outrigger:dev        FROM scratch: the static `outrigger` (sidecar, control plane, CA, injector), UID 1337
#   outrigger-init:dev   outrigger-base:bookworm + `outrigger`: `outrigger iptables install` (iptables-restore)
#   outrigger-demo:dev   FROM scratch: the two demo services (deploy/demo), UID 1000
#   outrigger-prometheus:dev  outrigger-base:bookworm + Debian's prometheus package (apt-get in the build), as the
#                        package's user `prometheus`; the compose mesh's scraper
#
# One release build, linked statically against glibc (`-C target-feature=+crt-static`; musl targets cannot be
# installed here). outrigger-base:bookworm, a Debian minbase with iptables made by debootstrap (about a minute),
# is built only when `docker image inspect` does not find it. Needs root (debootstrap), cargo and a Docker engine
# (deploy/dockerd.sh start). OUTRIGGER_IMAGE_TAG changes the tag (dev); DEBIAN_MIRROR the debootstrap mirror.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
tag=${OUTRIGGER_IMAGE_TAG:-dev}
base=outrigger-base:bookworm
target=x86_64-unknown-linux-gnu
target_dir=${CARGO_TARGET_DIR:-$repo/target}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

started=$SECONDS
echo "== build-images: static release build (-p outrigger -p outrigger-demo)"
(cd "$repo" && RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --target "$target" \
  -p outrigger -p outrigger-demo)
bin=$target_dir/$target/release
mkdir -p "$work/context"
cp "$bin/outrigger" "$bin/demo-web" "$bin/demo-greeter" "$work/context/"

if docker image inspect "$base" >/dev/null 2>&1; then
  echo "== build-images: $base is already there"
else
  echo "== build-images: $base (debootstrap --variant=minbase --include=iptables bookworm)"
  debootstrap --variant=minbase --include=iptables bookworm "$work/rootfs" \
    "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" > "$work/debootstrap.log" 2>&1 ||
    { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
  # What an image does not need: apt's lists and caches, documentation.
  rm -rf "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/var/cache/apt/"* "$work/rootfs/usr/share/doc" \
    "$work/rootfs/usr/share/man" "$work/rootfs/usr/share/locale"
  tar -C "$work/rootfs" -c . | docker import - "$base" >/dev/null
fi

for image in sidecar:outrigger init:outrigger-init demo:outrigger-demo prometheus:outrigger-prometheus; do
  file=${image%%:*} name=${image#*:}
  echo "== build-images: $name:$tag"
  # The legacy builder (Debian has no buildx) warns that it is deprecated: shown only when the build fails.
  docker build --quiet -f "$repo/deploy/images/$file.Dockerfile" -t "$name:$tag" "$work/context" \
    > "$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
done
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "^(outrigger(-init|-demo|-prometheus)?:$tag|$base) "
echo "== build-images: done in $((SECONDS - started)) s"
