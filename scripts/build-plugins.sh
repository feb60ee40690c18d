#!/usr/bin/env bash
# Build the plugin SDK, the bundled plugins and the hostile test fixtures for wasm32-wasip2 and
# copy each component to plugins/dist/<name>.wasm. Idempotent: cargo rebuilds only what changed
# and a component is copied only when its bytes differ.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
plugins="$root/plugins"
target=wasm32-wasip2

if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    echo "build-plugins: adding the $target target" >&2
    rustup target add "$target"
fi

cargo build --quiet --manifest-path "$plugins/Cargo.toml" --target-dir "$plugins/target" --workspace --target "$target" --release

mkdir -p "$plugins/dist"
out="$plugins/target/$target/release"
# Crate names use '-' (add-field); cargo writes the component with '_' (add_field.wasm).
for manifest in "$plugins"/*/Cargo.toml "$plugins"/fixtures/*/Cargo.toml; do
    dir="$(dirname "$manifest")"
    name="$(basename "$dir")"
    [ "$name" = sdk ] && continue
    src="$out/${name//-/_}.wasm"
    if [ ! -f "$src" ]; then
        echo "build-plugins: $src missing after the build" >&2
        exit 1
    fi
    dst="$plugins/dist/$name.wasm"
    if ! cmp -s "$src" "$dst"; then
        cp "$src" "$dst"
        echo "build-plugins: $dst"
    fi
done
