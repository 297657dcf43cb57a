# Offline stand-in for the official rabbitmq:3 (Debian bookworm's rabbitmq-server 3.10).
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends rabbitmq-server \
 && rm -rf /var/lib/apt/lists/* \
 # Like the official image: the default guest user may connect from other containers.
 && echo 'loopback_users = none' > /etc/rabbitmq/rabbitmq.conf
ENV DAEMON=rabbitmq-server
USER rabbitmq
EXPOSE 5672
COPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["rabbitmq-server"]
