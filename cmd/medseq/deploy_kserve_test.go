package main

// KServe's Go module is not in this project's module graph: these are mirrors of exactly the
// fields of serving.kserve.io/v1alpha1 ServingRuntime and v1beta1 InferenceService that
// deploy/kserve uses, with KServe's JSON names and types (pkg/apis/serving/v1alpha1/
// servingruntime_types.go; v1beta1 predictor.go, predictor_model.go, component.go), Kubernetes'
// own types for containers and volumes. A field the manifests use that is missing here fails
// the strict decoding; add it only as KServe spells it.

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// servingRuntime mirrors v1alpha1.ServingRuntime.
type servingRuntime struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              servingRuntimeSpec `json:"spec,omitempty"`
}

// servingRuntimeSpec mirrors v1alpha1.ServingRuntimeSpec with its inline
// ServingRuntimePodSpec.
type servingRuntimeSpec struct {
	SupportedModelFormats []supportedModelFormat `json:"supportedModelFormats,omitempty"`
	MultiModel            *bool                  `json:"multiModel,omitempty"`
	ProtocolVersions      []string               `json:"protocolVersions,omitempty"`
	Containers            []corev1.Container     `json:"containers"`
	Volumes               []corev1.Volume        `json:"volumes,omitempty"`
}

// supportedModelFormat mirrors v1alpha1.SupportedModelFormat.
type supportedModelFormat struct {
	Name       string  `json:"name"`
	Version    *string `json:"version,omitempty"`
	AutoSelect *bool   `json:"autoSelect,omitempty"`
	Priority   *int32  `json:"priority,omitempty"`
}

// inferenceService mirrors v1beta1.InferenceService.
type inferenceService struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              inferenceServiceSpec `json:"spec,omitempty"`
}

// inferenceServiceSpec mirrors v1beta1.InferenceServiceSpec (the predictor only).
type inferenceServiceSpec struct {
	Predictor predictorSpec `json:"predictor"`
}

// predictorSpec mirrors v1beta1.PredictorSpec: its model and the ComponentExtensionSpec
// fields inlined into it.
type predictorSpec struct {
	Model       *modelSpec `json:"model,omitempty"`
	MinReplicas *int32     `json:"minReplicas,omitempty"`
	MaxReplicas int32      `json:"maxReplicas,omitempty"`
	ScaleTarget *int32     `json:"scaleTarget,omitempty"`
	ScaleMetric *string    `json:"scaleMetric,omitempty"`
}

// modelSpec mirrors v1beta1.ModelSpec with its inline PredictorExtensionSpec, whose
// corev1.Container is inline too.
type modelSpec struct {
	ModelFormat      modelFormat `json:"modelFormat"`
	Runtime          *string     `json:"runtime,omitempty"`
	StorageURI       *string     `json:"storageUri,omitempty"`
	RuntimeVersion   *string     `json:"runtimeVersion,omitempty"`
	ProtocolVersion  *string     `json:"protocolVersion,omitempty"`
	corev1.Container `json:",inline"`
}

// modelFormat mirrors v1beta1.ModelFormat.
type modelFormat struct {
	Name    string  `json:"name"`
	Version *string `json:"version,omitempty"`
}
