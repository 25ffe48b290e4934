# One image for every botfleet command; docker-compose.yml runs bin/bot from it.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY pkg ./pkg
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/...

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /app botfleet
WORKDIR /app
COPY --from=build /out/ /usr/local/bin/
COPY config.example.yaml /app/config.example.yaml
USER botfleet
ENV WEB_PORT=8080 BOT_SERVER_HOST=0.0.0.0
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=2s --start-period=5s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${WEB_PORT}/health" || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["bot"]
