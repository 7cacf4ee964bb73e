#!/usr/bin/env python3
"""Writes a benchmark config with N live checks to stdout.

Usage: gen-checks.py BASE_CONFIG N
Patterns mix literals and wildcards. Only ten of them match the bench
payload, and they match about 1% of its lines: those of host000 (the
generator's names are bench.c<conn>.host<i % 100>.metric<i>).
"""
import sys

base, n = sys.argv[1], int(sys.argv[2])
out = [open(base).read()]
matching = [
    "bench.*.host000.*",
    "bench.c0.host000.*",
    "bench.c*.host000.metric*",
    "bench.{c0,c1}.host000.*",
    "bench.c[0-3].host000.*",
    "bench.c0.host000.metric00000",
    "bench.c1.host000.metric00100",
    "bench.c2.host000.metric00200",
    "bench.c3.host000.metric00300",
    "bench.c?.host000.metric0*",
]
shapes = [
    "app{k}.web{k}.requests",              # literal
    "app{k}.*.requests",                   # star node
    "svc{k}.{{api,web}}.latency.p99",      # braces
    "db{k}.host[0-9].cpu",                 # class
    "security.auditd.host{k}.user_auth.failed",  # literal, deep
    "fw{k}.iptables.*.dropped",            # star in the middle
    "bench.c{k}.host*.metric*",            # shares a prefix with the payload, never matches
]
for i in range(n):
    if i < len(matching) and n >= len(matching):
        target = matching[i]
    else:
        target = shapes[i % len(shapes)].format(k=i)
    out.append(f'[[check]]\nname = "bench check {i}"\ntarget = "{target}"\nwarn = 1000000000\nerror = 2000000000\n')
print("\n".join(out))
