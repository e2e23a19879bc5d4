#!/bin/bash
# A guest's life, redirect layout (see lifecycle.sh).
. "$(dirname "$0")/lib.sh"
LAYOUT="redirect"
. "$(dirname "$0")/lifecycle.sh"
