# Multi-stage build of a static activepieces_exporter in a distroless, non-root image.
#   docker build --build-arg VERSION=$(git describe --tags --always) --build-arg REVISION=$(git rev-parse HEAD) -t activepieces_exporter .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY apiclient ./apiclient
COPY collector ./collector
COPY cmd ./cmd
ARG VERSION=dev
ARG REVISION=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.revision=${REVISION}" \
      -o /out/activepieces_exporter ./cmd/activepieces_exporter

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/activepieces_exporter /activepieces_exporter
USER 65532:65532
EXPOSE 9942
ENTRYPOINT ["/activepieces_exporter"]
