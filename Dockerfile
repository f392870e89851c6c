# syntax=docker/dockerfile:1
# The plinth operator image: a static binary on distroless, running as the
# unprivileged user 65532. Build it with
#   docker build --build-arg VERSION=0.1.0 -t ghcr.io/plinth-dev/plinth:0.1.0 .

FROM golang:1.26 AS builder
ARG TARGETOS=linux
ARG TARGETARCH
WORKDIR /src
# Trivy, linked into the operator, imports encoding/json/v2.
# disable_grpc_modules leaves out the gRPC transport of Google Cloud
# Storage's client, which Trivy links and plinth never uses.
ENV GOEXPERIMENT=jsonv2 CGO_ENABLED=0
# Dependencies first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY main.go ./
COPY api/ api/
COPY controllers/ controllers/
COPY internal/ internal/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -tags disable_grpc_modules -ldflags "-s -w" -o /out/plinth .

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="plinth" \
      org.opencontainers.image.description="Kubernetes operator that keeps a catalog of approved container base images: it resolves and scans them for vulnerabilities, judges them against their policy (registry, age, upstream, vulnerabilities) and reports its verdict in status conditions." \
      org.opencontainers.image.source="https://github.com/plinth-dev/plinth" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=builder /out/plinth /plinth
USER 65532:65532
ENTRYPOINT ["/plinth"]
