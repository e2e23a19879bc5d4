#!/bin/bash
# kill -9 at random instants of each command, redirect layout (see crash.sh).
# shellcheck source-path=SCRIPTDIR disable=SC1091,SC1094,SC2034
. "$(dirname "$0")/lib.sh"
LAYOUT="redirect"
. "$(dirname "$0")/crash.sh"
