# Writes a text file into a C header as one NUL-terminated array, so the folio command carries
# it and needs no source tree at run time (the default calibration text of
# `folio quantize --method awq`). Run by launch/CMakeLists.txt:
#   cmake -DIN=file.txt -DOUT=header.h -DNAME=identifier -P embed_text.cmake
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n    " bytes "${bytes}")
file(WRITE "${OUT}" "/* Generated from ${IN} by launch/embed_text.cmake. */
static const char ${NAME}[] = {
    ${bytes}0x00};
")
