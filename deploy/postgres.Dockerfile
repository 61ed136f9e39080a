# PostgreSQL for deploybot's own stack, from the same Debian base (Debian's postgresql 15).
ARG BASE=deploybot/debian:bookworm
FROM ${BASE}
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
RUN chmod 0755 /usr/local/bin/postgres-entrypoint.sh && mkdir -p /var/lib/deploybot-pg \
 && chown postgres:postgres /var/lib/deploybot-pg
EXPOSE 5432
ENTRYPOINT ["tini", "--", "/usr/local/bin/postgres-entrypoint.sh"]
