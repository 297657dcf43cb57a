# Offline stand-in for the official memcached:1.6 (Debian bookworm's memcached 1.6).
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends memcached \
 && rm -rf /var/lib/apt/lists/*
COPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV DAEMON=memcached
USER memcache
EXPOSE 11211
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["memcached"]
