// Package serve serves the models of a model repository (DIR/<name>/<version>/, see
// docs/DESIGN.md) over gRPC: medseq.v1.Predictor for code sequences, the Open Inference
// Protocol v2 (inference.GRPCInferenceService, as KServe and Triton serve it),
// grpc.health.v1 and server reflection; Prometheus metrics on a separate HTTP listener;
// TLS, optional mutual TLS, bearer tokens and an append-only audit log.
//
// Single-model mode (Config.ModelName, serve --model-dir) serves one model version's folder
// instead of a repository, under a name the caller gives: the layout KServe's storage
// initializer leaves in /mnt/models. Health (grpc.health.v1) is what Kubernetes' gRPC probes
// ask: NOT_SERVING until a model has loaded and while draining.
//
// The repository is polled: a new version folder is loaded in the background and swapped in
// atomically; a request keeps the *Version it resolved at its start, so requests in flight
// finish on the version they started on.
//
// A request is read through Server.receive (guard.go), not grpc-go's decoding: bearer tokens
// are checked from the headers before anything is read (tapAuth); the request's memory is
// charged to a bounded in-flight budget before it is decoded; what cannot be decoded is
// INVALID_ARGUMENT, answered and counted by the interceptors like every other call.
//
// Nothing a request carries (codes, subject ids, times) is written to the process log; the
// audit log records the SHA-256 of the subject id only.
package serve
