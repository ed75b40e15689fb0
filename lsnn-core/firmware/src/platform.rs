//! What differs between the cores: the start-up (the runtime crate's `entry`), the console
//! and the exit status that QEMU returns.

/// Cortex-M4F (mps2-an386) and Cortex-M33 (mps2-an505): semihosting for both.
#[cfg(target_arch = "arm")]
mod imp {
    pub use cortex_m_rt::entry;
    use cortex_m_semihosting::{debug, hio};

    /// The host's console.
    pub type Console = hio::HostStream;

    /// The console, if the host provides one.
    pub fn console() -> Option<Console> {
        hio::hstdout().ok()
    }

    /// Ends the run; QEMU exits with 0 on success, non-zero otherwise.
    pub fn exit(success: bool) -> ! {
        debug::exit(if success {
            debug::EXIT_SUCCESS
        } else {
            debug::EXIT_FAILURE
        });
        #[allow(clippy::empty_loop)]
        loop {}
    }
}

/// RISC-V (QEMU virt): the 16550 UART at 0x1000_0000 for output, the SiFive test device at
/// 0x10_0000 for the exit status.
#[cfg(target_arch = "riscv32")]
mod imp {
    pub use riscv_rt::entry;

    const UART_THR: *mut u8 = 0x1000_0000 as *mut u8;
    const UART_LSR: *const u8 = 0x1000_0005 as *const u8;
    /// Line status: the transmit holding register is empty.
    const LSR_THRE: u8 = 0x20;
    const TEST_DEVICE: *mut u32 = 0x10_0000 as *mut u32;
    const TEST_PASS: u32 = 0x5555;
    /// Fail, with exit status 1 in the upper half.
    const TEST_FAIL_1: u32 = (1 << 16) | 0x3333;

    /// The UART.
    pub struct Console;

    impl core::fmt::Write for Console {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            for byte in s.bytes() {
                // SAFETY: the device registers of QEMU virt's UART (memory-mapped I/O; this
                // firmware is their only user).
                unsafe {
                    while UART_LSR.read_volatile() & LSR_THRE == 0 {}
                    UART_THR.write_volatile(byte);
                }
            }
            Ok(())
        }
    }

    /// The console (always there).
    pub fn console() -> Option<Console> {
        Some(Console)
    }

    /// Ends the run; QEMU exits with 0 on success, 1 otherwise.
    pub fn exit(success: bool) -> ! {
        // SAFETY: the register of QEMU virt's test device; writing it ends the emulation.
        unsafe { TEST_DEVICE.write_volatile(if success { TEST_PASS } else { TEST_FAIL_1 }) };
        #[allow(clippy::empty_loop)]
        loop {}
    }
}

pub use imp::*;
