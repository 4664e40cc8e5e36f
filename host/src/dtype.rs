//! Element types of queries and codebooks, dispatched through one sealed trait.

pub use pqtopk_abi::DType;

mod sealed {
    pub trait Sealed {}

    /// What a device buffer's element needs: cust's `DeviceCopy` with the `cuda` feature,
    /// nothing without it.
    #[cfg(feature = "cuda")]
    pub trait DeviceElement: cust::memory::DeviceCopy {}
    #[cfg(feature = "cuda")]
    impl<T: cust::memory::DeviceCopy> DeviceElement for T {}
    #[cfg(not(feature = "cuda"))]
    pub trait DeviceElement {}
    #[cfg(not(feature = "cuda"))]
    impl<T> DeviceElement for T {}
}

/// f32, f16 or bf16: the element types pqtopk reads. Scores are always computed in f32.
pub trait Element: sealed::Sealed + sealed::DeviceElement + Copy + Send + Sync + 'static {
    /// The [`DType`] a problem names this type by.
    const DTYPE: DType;
    /// The value, widened exactly.
    fn to_f64(self) -> f64;
    /// The nearest value of this type (round to nearest even).
    fn from_f32(v: f32) -> Self;
}

macro_rules! element {
    ($t:ty, $dtype:ident, |$x:ident| $to:expr, |$y:ident| $from:expr) => {
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: DType = DType::$dtype;
            fn to_f64(self) -> f64 {
                let $x = self;
                $to
            }
            fn from_f32($y: f32) -> Self {
                $from
            }
        }
    };
}

element!(f32, F32, |x| x as f64, |y| y);
element!(half::f16, F16, |x| x.to_f64(), |y| half::f16::from_f32(y));
element!(half::bf16, BF16, |x| x.to_f64(), |y| half::bf16::from_f32(y));
