# The sidecar image: nothing but the statically linked `outrigger` (glibc with crt-static), run as UID 1337, the
# UID `outrigger iptables install --proxy-uid 1337` exempts from interception. The same binary is the control
# plane and the injector: `docker run outrigger:dev control-plane ...`. Built by deploy/build-images.sh.
FROM scratch
COPY outrigger /usr/local/bin/outrigger
USER 1337:1337
ENTRYPOINT ["/usr/local/bin/outrigger"]
CMD ["run"]
