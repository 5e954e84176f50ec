"""Testbed support: real binaries (kube-apiserver, etcd, Jaeger) started and queried for the tests."""
