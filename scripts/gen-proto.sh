#!/usr/bin/env bash
# Regenerates the Go code for proto/**/*.proto (committed; `make proto` runs this).
# Needs protoc (apt-get install -y protobuf-compiler) and the pinned plugins below.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3} GOEXPERIMENT=${GOEXPERIMENT:-simd}
GOBIN_DIR=$(go env GOPATH)/bin
PROTOC_GEN_GO=v1.36.12
PROTOC_GEN_GO_GRPC=v1.6.2
PROTOC_GEN_GO_VTPROTO=v0.6.1-0.20240319094008-0393e58bdf10 # what grpc-go already selects; the server codec uses its code
[ -x "$GOBIN_DIR/protoc-gen-go" ] || go install google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO
[ -x "$GOBIN_DIR/protoc-gen-go-grpc" ] || go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC
[ -x "$GOBIN_DIR/protoc-gen-go-vtproto" ] || go install github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto@$PROTOC_GEN_GO_VTPROTO
command -v protoc >/dev/null || { echo "gen-proto: protoc not found (apt-get install -y protobuf-compiler)" >&2; exit 1; }
PATH="$GOBIN_DIR:$PATH" protoc -I proto \
  --go_out=proto --go_opt=paths=source_relative \
  --go-grpc_out=proto --go-grpc_opt=paths=source_relative \
  --go-vtproto_out=proto --go-vtproto_opt=paths=source_relative,features=marshal+unmarshal+unmarshal_unsafe+size+pool,pool=github.com/medseq/medseq/proto/medseq/v1.PredictRequest \
  proto/medseq/v1/predictor.proto proto/inference/grpc_service.proto
echo "gen-proto: regenerated proto/medseq/v1 and proto/inference"
