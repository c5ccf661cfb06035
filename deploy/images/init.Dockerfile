# The init image: `outrigger iptables install` needs iptables-restore, so this one is a Debian minbase root file
# system with iptables (made by debootstrap and imported by deploy/build-images.sh as outrigger-base:bookworm;
# elsewhere any base with iptables works: `FROM debian:bookworm-slim` + `apt-get install iptables`). It runs as
# root with NET_ADMIN and NET_RAW, once, before the app and its sidecar.
FROM outrigger-base:bookworm
COPY outrigger /usr/local/bin/outrigger
ENTRYPOINT ["/usr/local/bin/outrigger"]
CMD ["iptables", "install"]
