#!/usr/bin/env bash
# AWS's reference MSK IAM signer (aws-msk-iam-sasl-signer-python, pinned) in a venv under
# target/services/, for connectors/kafka/tests/msk_iam.rs. Prints the venv's python.
#   bash scripts/msk-signer.sh
name=msk-signer
. "$(dirname "$0")/services-lib.sh"
venv=$(pypi_tool aws-msk-iam-sasl-signer-python 1.0.2)
echo "$venv/bin/python"
