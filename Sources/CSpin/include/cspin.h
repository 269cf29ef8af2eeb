#ifndef ATP_CSPIN_H
#define ATP_CSPIN_H

/// One spin-wait hint: lets a sibling hardware thread run and saves power while a worker polls.
static inline void atp_spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif
