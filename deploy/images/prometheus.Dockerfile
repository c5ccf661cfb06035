# Prometheus for the local mesh (deploy/compose), scraping the sidecars' statistics. No image can be pulled
# here, so this is Debian's `prometheus` package on the same minbase as the init image (outrigger-base:bookworm,
# made by deploy/build-images.sh); elsewhere any Prometheus image works (`prom/prometheus` with the same
# prometheus.yml). The configuration comes from compose (deploy/compose/prometheus/prometheus.yml).
FROM outrigger-base:bookworm
# Without recommends: prometheus only (no node exporter); then what an image does not need: apt's lists and
# caches, documentation, and moment-timezone's raw data (212 MB of JSON the web UI never loads: its pages use
# moment-timezone-with-data.min.js, which carries the zones itself).
RUN apt-get update \
 && apt-get install -y --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /usr/share/doc /usr/share/man /usr/share/locale \
    /usr/share/javascript/moment-timezone/data \
 && mkdir -p /prometheus \
 && chown prometheus:prometheus /prometheus
# The package's own user (not root); the time-series database lives in /prometheus, lost with the container.
USER prometheus
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus", \
     "--web.listen-address=0.0.0.0:9090"]
