#!/usr/bin/env bash
# The bytes a refactor must not change (issue 32): four small runs with fixed seeds, and
# their SHA-256. Run it before and after a change on the same machine and compare the
# printed lines (bfloat16 and float32 machines give different bytes; each repeats itself).
#   bash tools/same_bytes.sh OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: tools/same_bytes.sh OUT_DIR}
mkdir -p "$out"
ex=examples
common=(--content $ex/tubingen_neckarfront.jpg --width 64 --seed 3 --quiet --overwrite)
python neural_style.py "${common[@]}" --styles $ex/starry_night.jpg --output "$out/plain.png" --iterations 20
python neural_style.py "${common[@]}" --styles $ex/the_scream.jpg --output "$out/preset.png" --preset classic --iterations 20
python neural_style.py "${common[@]}" --styles $ex/starry_night.jpg $ex/the_scream.jpg --output "$out/masked.png" \
    --iterations 20 --style-masks $ex/masks/starry_night_sky.png $ex/masks/starry_night_village.png
python examples/video_clip.py frames "$out/clip" --frames 4 >/dev/null
python video.py --input "$out/clip" --styles $ex/starry_night.jpg --output "$out/video" --width 64 --seed 3 \
    --iterations 10 --frame-iterations 10 --quiet --overwrite
cd "$out" && sha256sum plain.png preset.png masked.png video/*.png
