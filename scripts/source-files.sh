# Sourced by the format and tidy scripts: qwen3moe_source_files lists the project's C++ and
# CUDA sources (relative to the current folder, the repository root), fixtures left out.
qwen3moe_source_files() {
  find kernels parallel core bench rpc launcher tests -type f \
    \( -name '*.h' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' \) \
    -not -path 'tests/fixtures/*' | sort
}
