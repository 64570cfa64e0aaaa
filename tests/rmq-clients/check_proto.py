"""Checks sundial's .proto files against the installed official clients' own
definitions: every message, field (number, type, label, oneof) and enum value the
clients know must be in sundial's, identically; sundial may have newer ones. Run with
the venv's Python from scripts/rocketmq-clients.sh (it has grpc_tools):

    $RMQ_PYTHON tests/rmq-clients/check_proto.py

Exits 1 on any mismatch. Both clients agreed with sundial's files when this was written.
"""

import os
import sys
import tempfile

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SUNDIAL = os.path.join(ROOT, "rmq-proto", "proto")
NODE = os.path.join(
    os.environ.get("SUNDIAL_RMQ_CLIENTS", os.path.expanduser("~/.cache/sundial")),
    "rmq-node", "node_modules", "rocketmq-client-nodejs", "proto")


def compile_set(include):
    out = os.path.join(tempfile.mkdtemp(), "set.pb")
    rc = protoc.main(["protoc", f"-I{include}", f"-I{protoc._get_resource_file_name('grpc_tools', '_proto')}",
                      "--include_imports", f"--descriptor_set_out={out}",
                      os.path.join(include, "apache/rocketmq/v2/service.proto")])
    if rc != 0:
        sys.exit(f"protoc failed on {include}")
    fds = descriptor_pb2.FileDescriptorSet()
    with open(out, "rb") as f:
        fds.ParseFromString(f.read())
    return list(fds.file)


def python_files():
    from rocketmq.grpc_protocol import definition_pb2, service_pb2

    files = []
    for mod in (definition_pb2, service_pb2):
        p = descriptor_pb2.FileDescriptorProto()
        mod.DESCRIPTOR.CopyToProto(p)
        files.append(p)
    return files


def index(files):
    msgs, enums, methods = {}, {}, {}

    def walk(prefix, ms, es):
        for m in ms:
            n = prefix + m.name
            msgs[n] = {f.name: (f.number, f.type, f.label, f.type_name.lstrip("."),
                                f.HasField("oneof_index") and not f.proto3_optional)
                       for f in m.field}
            walk(n + ".", m.nested_type, m.enum_type)
        for e in es:
            enums[prefix + e.name] = {v.name: v.number for v in e.value}

    for f in files:
        if f.package != "apache.rocketmq.v2":
            continue
        walk("", f.message_type, f.enum_type)
        for s in f.service:
            for m in s.method:
                methods[f"{s.name}.{m.name}"] = (m.input_type, m.output_type,
                                                 m.client_streaming, m.server_streaming)
    return msgs, enums, methods


def compare(name, client, sundial):
    (cm, ce, cs), (sm, se, ss) = client, sundial
    bad = []
    for n, fields in cm.items():
        for fn, t in fields.items():
            if sm.get(n, {}).get(fn) != t:
                bad.append(f"{n}.{fn}: client {t}, sundial {sm.get(n, {}).get(fn)}")
    for n, values in ce.items():
        for k, v in values.items():
            if se.get(n, {}).get(k) != v:
                bad.append(f"enum {n}.{k}: client {v}, sundial {se.get(n, {}).get(k)}")
    for n, t in cs.items():
        if ss.get(n) != t:
            bad.append(f"rpc {n}: client {t}, sundial {ss.get(n)}")
    for line in bad:
        print(f"{name}: {line}")
    print(f"{name}: {len(cm)} messages, {len(ce)} enums, {len(cs)} RPCs checked, "
          f"{len(bad)} mismatches")
    return not bad


def main():
    sundial = index(compile_set(SUNDIAL))
    ok = compare("python 5.1.2", index(python_files()), sundial)
    if os.path.isdir(NODE):
        ok = compare("node 1.0.8", index(compile_set(NODE)), sundial) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
