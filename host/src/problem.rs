//! The operation's contract: shapes, options and their validation.

use crate::error::{Result, ensure};
pub use pqtopk_abi::{DType, Metric, Order};

/// One fused score + top-k problem.
///
/// Tensors, all row-major and contiguous:
/// - queries `[b, h, sq, d]` of `query_dtype`;
/// - codebooks `[hkv, m, c, d/m]` of `codebook_dtype`;
/// - codes `[b, hkv, n, m]` u8, each `< c`;
/// - optional valid lengths `n_valid[b]` u32: keys at or past `n_valid[bi]` are never selected.
///
/// Query head `i` uses kv head `i / (h / hkv)`. Outputs are `[b, h, sq, k]` indices (and
/// scores), or `[b, hkv, sq, k]` in group mode.
///
/// # Example
/// ```
/// use pqtopk::{Metric, Order, Problem};
///
/// // A decode step: 32 query heads over 8 kv heads, 31 872 keys of 16 one-byte codes, top 2048.
/// let p = Problem::new(1, 32, 8, 1, 128, 16, 256, 31872, 2048)
///     .with_metric(Metric::InnerProduct)
///     .with_order(Order::ByIndex);
/// p.validate()?;
/// assert_eq!(p.rows(), 32);
/// assert_eq!(p.codes_len(), 8 * 31872 * 16);
/// // Every argument outside the contract is a typed error naming it.
/// let error = Problem { k: 0, ..p }.validate().unwrap_err();
/// assert!(matches!(error, pqtopk::Error::InvalidArgument { name: "k", .. }));
/// # Ok::<(), pqtopk::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Problem {
    /// Batch entries.
    pub b: usize,
    /// Query heads.
    pub h: usize,
    /// Key-value heads; `h` is a multiple of it (GQA).
    pub hkv: usize,
    /// Queries per head (1 for decode, the chunk length for chunked prefill).
    pub sq: usize,
    /// Head dimension.
    pub d: usize,
    /// Sub-spaces per key.
    pub m: usize,
    /// Centroids per sub-space, 1..=256.
    pub c: usize,
    /// Keys per (batch, kv head).
    pub n: usize,
    /// Results per row, 1..=n. Rows with fewer valid keys are padded with index `u32::MAX` and
    /// the worst score (−inf for inner product, +inf for L2).
    pub k: usize,
    /// How a query and a key are scored.
    pub metric: Metric,
    /// The order of each row's results.
    pub order: Order,
    /// One selection per (batch, kv head, s) on the scores summed over the kv head's G query
    /// heads (PQCache's grouped selection).
    pub group: bool,
    /// Element type of the queries.
    pub query_dtype: DType,
    /// Element type of the codebooks.
    pub codebook_dtype: DType,
}

/// Largest `n` (keys are indexed by u32, with room for `u32::MAX` as the padding index).
pub const MAX_KEYS: usize = (1 << 31) - 1;

/// Most elements of any one tensor, so that its bytes (8 per element at most) fit an `isize`.
const MAX_ELEMENTS: usize = isize::MAX as usize / 8;

/// `Err(InvalidArgument)` naming the tensor unless its elements (the product of `dims`) fit
/// the address space in bytes.
pub(crate) fn check_tensor_size(name: &'static str, dims: &[usize]) -> Result<()> {
    let elements = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    ensure(
        elements.is_some_and(|e| e <= MAX_ELEMENTS),
        name,
        || format!("at most {MAX_ELEMENTS} elements"),
        elements.map_or_else(
            || format!("{} (overflows)", dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("·")),
            |e| e.to_string(),
        ),
    )
}

/// The product of `factors`, saturating.
pub(crate) fn product(factors: &[usize]) -> usize {
    factors.iter().fold(1usize, |acc, &f| acc.saturating_mul(f))
}

impl Problem {
    /// A problem with inner-product scores, results by score, no group mode, f16 inputs.
    #[allow(clippy::too_many_arguments)]
    pub fn new(b: usize, h: usize, hkv: usize, sq: usize, d: usize, m: usize, c: usize, n: usize, k: usize) -> Problem {
        Problem {
            b,
            h,
            hkv,
            sq,
            d,
            m,
            c,
            n,
            k,
            metric: Metric::InnerProduct,
            order: Order::ByScore,
            group: false,
            query_dtype: DType::F16,
            codebook_dtype: DType::F16,
        }
    }

    /// A problem built from named sizes, validated by [`ProblemBuilder::build`]: batch 1, one
    /// query per head, inner product, results by score, f16 unless set.
    ///
    /// ```
    /// use pqtopk::{Order, Problem};
    ///
    /// let p = Problem::builder()
    ///     .heads(32)
    ///     .kv_heads(8)
    ///     .head_dim(128)
    ///     .subspaces(16)
    ///     .centroids(256)
    ///     .keys(31872)
    ///     .k(2048)
    ///     .order(Order::ByIndex)
    ///     .build()?;
    /// assert_eq!(p, Problem::new(1, 32, 8, 1, 128, 16, 256, 31872, 2048).with_order(Order::ByIndex));
    /// // A size left out is zero, and named by the error.
    /// assert!(Problem::builder().heads(8).build().is_err());
    /// # Ok::<(), pqtopk::Error>(())
    /// ```
    pub fn builder() -> ProblemBuilder {
        ProblemBuilder(Problem { b: 1, sq: 1, ..Problem::new(0, 0, 0, 0, 0, 0, 0, 0, 0) })
    }

    /// This problem scored by `metric`.
    pub fn with_metric(self, metric: Metric) -> Problem {
        Problem { metric, ..self }
    }

    /// This problem with results in `order`.
    pub fn with_order(self, order: Order) -> Problem {
        Problem { order, ..self }
    }

    /// This problem with (or without) PQCache's group mode.
    pub fn with_group(self, group: bool) -> Problem {
        Problem { group, ..self }
    }

    /// This problem with these element types.
    pub fn with_dtypes(self, query_dtype: DType, codebook_dtype: DType) -> Problem {
        Problem { query_dtype, codebook_dtype, ..self }
    }

    // The accessors below never panic, also on a problem that `validate` rejects: a division by
    // zero gives 0 and products saturate. On a valid problem they are exact.

    /// Query heads per kv head.
    pub fn group_size(&self) -> usize {
        self.h.checked_div(self.hkv).unwrap_or(0)
    }

    /// Heads of the output: `h`, or `hkv` in group mode.
    pub fn out_heads(&self) -> usize {
        if self.group { self.hkv } else { self.h }
    }

    /// Output rows `b · out_heads · sq`.
    pub fn rows(&self) -> usize {
        product(&[self.b, self.out_heads(), self.sq])
    }

    /// Elements of each output buffer: `rows · k`.
    pub fn out_len(&self) -> usize {
        self.rows().saturating_mul(self.k)
    }

    /// Elements of the queries: `b · h · sq · d`.
    pub fn queries_len(&self) -> usize {
        product(&[self.b, self.h, self.sq, self.d])
    }

    /// Elements of the codebooks: `hkv · m · c · d/m`.
    pub fn codebooks_len(&self) -> usize {
        product(&[self.hkv, self.c, self.d])
    }

    /// Bytes of the codes: `b · hkv · n · m`.
    pub fn codes_len(&self) -> usize {
        product(&[self.b, self.hkv, self.n, self.m])
    }

    /// Checks every argument against the contract; the error names the argument, the expected
    /// and the actual value.
    pub fn validate(&self) -> Result<()> {
        let p = self;
        for (name, v) in [("b", p.b), ("h", p.h), ("hkv", p.hkv), ("sq", p.sq), ("d", p.d), ("m", p.m)] {
            ensure(v >= 1, name, || ">= 1".into(), v)?;
        }
        ensure((1..=256).contains(&p.c), "c", || "1..=256".into(), p.c)?;
        ensure((1..=MAX_KEYS).contains(&p.n), "n", || format!("1..={MAX_KEYS}"), p.n)?;
        ensure((1..=p.n).contains(&p.k), "k", || format!("1..=n ({})", p.n), p.k)?;
        ensure(p.d.is_multiple_of(p.m), "d", || format!("a multiple of m ({})", p.m), p.d)?;
        ensure(p.hkv <= p.h, "hkv", || format!("at most h ({})", p.h), p.hkv)?;
        ensure(p.h.is_multiple_of(p.hkv), "h", || format!("a multiple of hkv ({})", p.hkv), p.h)?;
        // Every tensor's elements, and the reference's scores (rows · n), must fit the address
        // space in bytes (at most 8 per element) before anything is multiplied further.
        let tensors = [
            ("queries", [p.b, p.h, p.sq, p.d]),
            ("codebooks", [p.hkv, p.c, p.d, 1]),
            ("codes", [p.b, p.hkv, p.n, p.m]),
            ("outputs", [p.b, p.out_heads(), p.sq, p.k]),
            ("scores", [p.b, p.out_heads(), p.sq, p.n]),
        ];
        for (name, dims) in tensors {
            check_tensor_size(name, &dims)?;
        }
        Ok(())
    }
}

/// Builds a [`Problem`] by named fields; see [`Problem::builder`].
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct ProblemBuilder(Problem);

impl ProblemBuilder {
    /// Batch entries (`b`, default 1).
    pub fn batch(self, b: usize) -> Self {
        ProblemBuilder(Problem { b, ..self.0 })
    }

    /// Query heads (`h`).
    pub fn heads(self, h: usize) -> Self {
        ProblemBuilder(Problem { h, ..self.0 })
    }

    /// Key-value heads (`hkv`), dividing the query heads.
    pub fn kv_heads(self, hkv: usize) -> Self {
        ProblemBuilder(Problem { hkv, ..self.0 })
    }

    /// Queries per head (`sq`, default 1).
    pub fn queries_per_head(self, sq: usize) -> Self {
        ProblemBuilder(Problem { sq, ..self.0 })
    }

    /// Head dimension (`d`).
    pub fn head_dim(self, d: usize) -> Self {
        ProblemBuilder(Problem { d, ..self.0 })
    }

    /// Sub-spaces per key (`m`), dividing the head dimension.
    pub fn subspaces(self, m: usize) -> Self {
        ProblemBuilder(Problem { m, ..self.0 })
    }

    /// Centroids per sub-space (`c`, 1..=256).
    pub fn centroids(self, c: usize) -> Self {
        ProblemBuilder(Problem { c, ..self.0 })
    }

    /// Keys per (batch, kv head) (`n`).
    pub fn keys(self, n: usize) -> Self {
        ProblemBuilder(Problem { n, ..self.0 })
    }

    /// Results per row (`k`, 1..=n).
    pub fn k(self, k: usize) -> Self {
        ProblemBuilder(Problem { k, ..self.0 })
    }

    /// The metric (default inner product).
    pub fn metric(self, metric: Metric) -> Self {
        ProblemBuilder(self.0.with_metric(metric))
    }

    /// The results' order (default by score).
    pub fn order(self, order: Order) -> Self {
        ProblemBuilder(self.0.with_order(order))
    }

    /// PQCache's group mode (default off).
    pub fn group(self, group: bool) -> Self {
        ProblemBuilder(self.0.with_group(group))
    }

    /// Element types of the queries and the codebooks (default f16).
    pub fn dtypes(self, query_dtype: DType, codebook_dtype: DType) -> Self {
        ProblemBuilder(self.0.with_dtypes(query_dtype, codebook_dtype))
    }

    /// The problem, validated.
    pub fn build(self) -> Result<Problem> {
        self.0.validate()?;
        Ok(self.0)
    }
}
