# The demo services (statically linked), as an unprivileged user that is not the sidecar's UID 1337, whose
# traffic iptables would let bypass the sidecar. Run `/demo-web` or `/demo-greeter`.
FROM scratch
COPY demo-web demo-greeter /
USER 1000:1000
