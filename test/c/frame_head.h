/* The 40-byte head every frame of the allocation protocol starts with (../shared/PROTOCOL.md, "The
 * common 40-byte head"), as the runtime's packed struct lays it out. The test clients put their
 * size's fields after it: `struct X { TT_FRAME_HEAD; ...the rest... };` inside #pragma pack(1). */
#ifndef TT_FRAME_HEAD_H
#define TT_FRAME_HEAD_H
#include <stdint.h>
#define TT_FRAME_HEAD \
    uint8_t type;         \
    uint8_t pad1[3];      \
    int32_t device_id;    \
    uint64_t size;        \
    uint8_t buffer_type;  \
    uint8_t pad2[3];      \
    int32_t process_id;   \
    uint64_t buffer_id;   \
    uint64_t timestamp
#endif
