// Informer memory: heap bytes per cached ResourceClaim and ResourceSlice in the Store, beside
// the size of the JSON the API server sends for them (with managedFields, which the informer
// strips). Goal: at most 2 KB for a typical claim.
#include <malloc.h>

#include <cstdio>
#include <string>
#include <vector>

#include "k8sclient/cache/store.h"
#include "k8sclient/object.h"

namespace {

// A typical allocated claim generated from a pod's template, as the API server returns it.
std::string typical_claim(int i) {
  std::string n = std::to_string(i);
  return R"({"kind":"ResourceClaim","apiVersion":"resource.k8s.io/v1","metadata":{"name":"trainer-)" +
         n + R"(-gpu-7j2k4","generateName":"trainer-)" + n +
         R"(-gpu-","namespace":"ml-team","uid":"3f2c9a1e-)" +
         std::string(4 - std::min<size_t>(4, n.size()), '0') + n +
         R"(-4b7d-9c11-0242ac120002","resourceVersion":")" + std::to_string(100000 + i) +
         R"(","creationTimestamp":"2026-11-25T10:00:00Z","annotations":{"resource.kubernetes.io/pod-claim-name":"gpu"},"ownerReferences":[{"apiVersion":"v1","kind":"Pod","name":"trainer-)" +
         n +
         R"(","uid":"8e51bc7d-9cd5-452e-afcd-a1b2c3d4e5f6","controller":true,"blockOwnerDeletion":true}],"finalizers":["resource.kubernetes.io/delete-protection"],"managedFields":[{"manager":"kube-controller-manager","operation":"Update","apiVersion":"resource.k8s.io/v1","time":"2026-11-25T10:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:annotations":{".":{},"f:resource.kubernetes.io/pod-claim-name":{}},"f:generateName":{},"f:ownerReferences":{".":{},"k:{\"uid\":\"8e51bc7d\"}":{}}},"f:spec":{"f:devices":{"f:requests":{}}}}},{"manager":"kube-scheduler","operation":"Update","apiVersion":"resource.k8s.io/v1","time":"2026-11-25T10:00:01Z","fieldsType":"FieldsV1","fieldsV1":{"f:status":{"f:allocation":{".":{},"f:devices":{},"f:nodeSelector":{}},"f:reservedFor":{}}},"subresource":"status"}]},"spec":{"devices":{"requests":[{"name":"gpu","exactly":{"deviceClassName":"gpu.nvidia.com","allocationMode":"ExactCount","count":1}}]}},"status":{"allocation":{"devices":{"results":[{"request":"gpu","driver":"gpu.nvidia.com","pool":"node-17","device":"gpu-3"}]},"nodeSelector":{"nodeSelectorTerms":[{"matchFields":[{"key":"metadata.name","operator":"In","values":["node-17"]}]}]}},"reservedFor":[{"resource":"pods","name":"trainer-)" +
         n + R"(","uid":"8e51bc7d-9cd5-452e-afcd-a1b2c3d4e5f6"}]}})";
}

// A node's slice for an 8-GPU node: eight full GPUs with NVIDIA's attribute set.
std::string typical_slice(int i) {
  std::string node = "node-" + std::to_string(i);
  std::string devices;
  for (int g = 0; g < 8; ++g) {
    if (g) devices += ",";
    std::string gs = std::to_string(g);
    devices +=
        R"({"name":"gpu-)" + gs +
        R"(","attributes":{"type":{"string":"gpu"},"uuid":{"string":"GPU-1c0b2a3e-5f6d-4c7b-8a9e-0123456789)" +
        gs + R"("},"index":{"int":)" + gs + R"(},"minor":{"int":)" + gs +
        R"(},"productName":{"string":"NVIDIA H100 80GB HBM3"},"brand":{"string":"Nvidia"},"architecture":{"string":"Hopper"},"cudaComputeCapability":{"version":"9.0.0"},"driverVersion":{"version":"550.54.15"},"cudaDriverVersion":{"version":"12.4.0"},"pcieBusID":{"string":"0000:1)" +
        gs + R"(:00.0"},"resource.kubernetes.io/pcieRoot":{"string":"pci0000:1)" + gs +
        R"("}},"capacity":{"memory":{"value":"80Gi"}}})";
  }
  return R"({"kind":"ResourceSlice","apiVersion":"resource.k8s.io/v1","metadata":{"name":")" +
         node + R"(-gpu.nvidia.com-x7k2p","generateName":")" + node +
         R"(-gpu.nvidia.com-","uid":"5a6b7c8d-0000-4000-8000-)" + std::to_string(100000000000 + i) +
         R"(","resourceVersion":")" + std::to_string(200000 + i) +
         R"(","creationTimestamp":"2026-11-25T09:00:00Z","ownerReferences":[{"apiVersion":"v1","kind":"Node","name":")" +
         node +
         R"(","uid":"7f3e2d1c-0000-4000-8000-000000000001","controller":true}],"managedFields":[{"manager":"gpu-kubelet-plugin","operation":"Update","apiVersion":"resource.k8s.io/v1","time":"2026-11-25T09:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:devices":{},"f:driver":{},"f:nodeName":{},"f:pool":{}}}}]},"spec":{"driver":"gpu.nvidia.com","pool":{"name":")" +
         node + R"(","generation":1,"resourceSliceCount":1},"nodeName":")" + node +
         R"(","devices":[)" + devices + "]}}";
}

size_t heap_in_use() {
  return mallinfo2().uordblks;
}

void measure(const char* what, std::string (*make)(int), int n) {
  std::vector<std::string> wire;
  wire.reserve(n);
  size_t wire_bytes = 0;
  for (int i = 0; i < n; ++i) {
    wire.push_back(make(i));
    wire_bytes += wire.back().size();
  }
  nvdra::k8s::Store store;
  const size_t before = heap_in_use();
  for (const auto& w : wire)
    store.upsert(*nvdra::k8s::Object::parse(w));
  const size_t after = heap_in_use();
  const double per_object = double(after - before) / n;
  const double per_wire = double(wire_bytes) / n;
  size_t json_bytes = 0;
  for (const auto& o : store.list())
    json_bytes += o->json().size();
  std::printf(
      "%-14s %6d objects: wire %7.0f B/object, kept JSON %7.0f B/object, heap %7.0f B/object"
      " (%.2f x the wire size)\n",
      what, n, per_wire, double(json_bytes) / n, per_object, per_object / per_wire);
}

}  // namespace

int main() {
  std::printf("Informer store memory (heap growth measured with mallinfo2)\n");
  measure("ResourceClaim", typical_claim, 20000);
  measure("ResourceSlice", typical_slice, 5000);
  std::printf("goal: <= 2048 B per typical ResourceClaim\n");
  return 0;
}
