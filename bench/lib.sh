# Helpers the benchmark scripts share; `source` it from one of them.

# datagen_input SLUICE WORK RECORDS: writes RECORDS datagen readings as JSON lines to
# WORK/in.jsonl (the input every file-based case reads).
datagen_input() {
  local bin=$1 work=$2 records=$3
  cat > "$work/gen.toml" <<JOB
api_version = 1
name = "gen"
[source]
type = "datagen"
count = $records
[[sinks]]
type = "file"
path = "in.jsonl"
fsync = false
JOB
  "$bin" run "$work/gen.toml" --no-progress --state-dir "$work/gen-state" 2>/dev/null
}

# median: the median of the numbers on stdin, one per line.
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
