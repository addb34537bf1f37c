#!/usr/bin/env bash
# Stands in for nvdra-agent in tests of `nvdra-sim up`: records its arguments in
# <--root>/fake-agent.args and runs until SIGTERM.
args="$*"
root=""
while [ $# -gt 0 ]; do
  case "$1" in --root) root=$2; shift ;; esac
  shift
done
echo "start $args" >>"$root/fake-agent.args"
trap 'echo stopped >>"$root/fake-agent.args"; exit 0' TERM
while true; do sleep 0.1; done
