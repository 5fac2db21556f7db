//! Direct convolution on CPUs with AVX-512, for every stride, dilation and padding: no im2col
//! and no gemm packing. Each image (and group) is copied once into a zero-padded buffer, each
//! channel stored as its `sh x sw` stride phases (one phase, the padded plane itself, for
//! stride 1; none of it when there is no padding and no stride: the input is then read in
//! place). Output positions are numbered on the phase width, `q = oy * wh + ox`, so that for
//! every kernel tap `(ky, kx)` the inputs of consecutive outputs are consecutive floats at a
//! fixed offset (phase `((ky dh) % sh, (kx dw) % sw)`, row `(ky dh) / sh`, column `(kx dw) /
//! sw`). The micro-kernel computes 64 consecutive `q` (four 16-float vectors) for up to 6
//! output channels at once: per input channel and tap, 4 loads, 6 broadcast weights and 24
//! fused multiply-adds, all accumulators in registers (the last block of a plane takes only
//! the vectors that hold positions). Bias and ReLU are applied in registers
//! and the result is stored straight into the `[N, C, oh, ow]` output: the positions with `ox >=
//! ow` (padding columns) are squeezed out of each vector by a masked compress, since the valid
//! ones are consecutive in the output.
//!
//! Chosen over im2col + gemm where it applies (figures in docs/performance.md): im2col writes and gemm then
//! re-packs `kh * kw` copies of the input, which cost as much as the arithmetic on 2 cores.

use super::{Geometry, OutPtr as Ptr, Pool};
use std::arch::x86_64::*;
use std::mem::MaybeUninit;

/// Output channels per micro-kernel call (6 x 4 accumulators + 4 inputs + 1 weight = 29 of the
/// 32 vector registers).
pub(super) const NC: usize = 6;
/// Output positions per micro-kernel call: four vectors of 16.
const NQ: usize = 64;
/// How many input channels ahead the micro-kernel prefetches its weights.
const PREFETCH: usize = 8;
/// Input channels per pass over the outputs (their inputs for one position block fit in L1).
const CHUNK: usize = 128;

/// Bytes of packed weights one task reuses over its images: half of a core's 2 MiB L2.
const WEIGHT_BUDGET: usize = 1 << 20;

/// True when the running CPU can use this kernel.
pub fn available() -> bool {
    is_x86_feature_detected!("avx512f")
}

/// A stride-1 convolution's weights packed for the micro-kernel: per group, blocks of `NC`
/// output channels, each `[cin_g][kh * kw][NC]` (the last block zero-padded).
#[derive(Debug)]
pub struct Packed {
    data: Vec<f32>,
    blocks: usize,
}

impl Packed {
    /// Packs `weight` (`[cout, cin_g, kh, kw]` row-major) for `groups` groups.
    pub fn new(weight: &[f32], cout: usize, cin_g: usize, taps: usize, groups: usize) -> Packed {
        let cout_g = cout / groups;
        let blocks = cout_g.div_ceil(NC);
        let bsize = cin_g * taps * NC;
        let mut data = vec![0f32; groups * blocks * bsize];
        for g in 0..groups {
            for co in 0..cout_g {
                let (b, j) = (co / NC, co % NC);
                let src = &weight[(g * cout_g + co) * cin_g * taps..][..cin_g * taps];
                let dst = &mut data[(g * blocks + b) * bsize..][..bsize];
                for (i, &v) in src.iter().enumerate() {
                    dst[i * NC + j] = v;
                }
            }
        }
        Packed { data, blocks }
    }

    /// The weights back as `[cout, cin_g, kh, kw]` rows (the inverse of [`new`](Self::new)).
    pub fn unpack(&self, cout: usize, cin_g: usize, taps: usize, groups: usize) -> Vec<f32> {
        let cout_g = cout / groups;
        let bsize = cin_g * taps * NC;
        let mut weight = vec![0f32; cout * cin_g * taps];
        for g in 0..groups {
            for co in 0..cout_g {
                let (b, j) = (co / NC, co % NC);
                let dst = &mut weight[(g * cout_g + co) * cin_g * taps..][..cin_g * taps];
                let src = &self.data[(g * self.blocks + b) * bsize..][..bsize];
                for (i, v) in dst.iter_mut().enumerate() {
                    *v = src[i * NC + j];
                }
            }
        }
        weight
    }
}

/// Where [`conv2d_into`] writes: channels `offset..offset + cout` of a `[N, channels, oh, ow]`
/// buffer at `ptr`.
#[derive(Clone, Copy)]
pub struct Out {
    pub ptr: *mut f32,
    pub channels: usize,
    pub offset: usize,
}

/// Convolution of `x` (`[N, Cin, H, W]` row-major) plus `bias` and `residual` (`[N, cout, oh,
/// ow]`, only where the buffer holds just this convolution's channels), ReLU when `relu`,
/// writing every element of channels `out.offset..out.offset + cout` of the `[N, out.channels,
/// oh, ow]` buffer at `out.ptr`. The caller checks [`available`] and that the padded input holds
/// one kernel extent.
///
/// # Safety
/// `out.ptr` must be valid for writes of `N * out.channels * oh * ow` floats, with `out.offset
/// + cout <= out.channels`, and nothing else may access those channels meanwhile.
#[allow(clippy::too_many_arguments)]
pub unsafe fn conv2d_into(
    x: &[f32],
    geo: &Geometry,
    packed: &Packed,
    bias: Option<&[f32]>,
    relu: bool,
    residual: Option<&[f32]>,
    pool: Option<&Pool>,
    out: Out,
) {
    use rayon::prelude::*;
    let Geometry {
        n,
        cin,
        h,
        w,
        cout,
        groups,
        k: [kh, kw],
        stride: [sh, sw],
        dilation: [dh, dw],
        pad: [t, b, l, r],
    } = *geo;
    let (cin_g, cout_g) = (cin / groups, cout / groups);
    let (hp, wp) = (h + t + b, w + l + r);
    let [oh, ow] = geo.output();
    assert!(residual.is_none_or(|r| {
        out.channels == cout && out.offset == 0 && r.len() >= n * cout * oh * ow
    }));
    let res = residual.map(|r| Ptr(r.as_ptr().cast_mut()));
    // Each padded channel is stored as its sh x sw stride phases, phase (a, b) holding padded
    // rows a, a + sh, ... and columns b, b + sw, ...: kernel tap (ky, kx) of output (oy, ox)
    // is then phase ((ky dh) % sh, (kx dw) % sw) at row oy + (ky dh) / sh, column ox + (kx dw)
    // / sw, a fixed offset from q = oy * wh + ox.
    let (hh, wh) = (hp.div_ceil(sh), wp.div_ceil(sw));
    let phase = hh * wh;
    // Only the phases some tap reads are stored (a 1x1 kernel with stride 2 reads one of four).
    let mut slot = vec![usize::MAX; sh * sw];
    let mut used = 0;
    for ky in 0..kh {
        for kx in 0..kw {
            let p = ((ky * dh) % sh) * sw + (kx * dw) % sw;
            if slot[p] == usize::MAX {
                slot[p] = used;
                used += 1;
            }
        }
    }
    let plane = used * phase;
    let qn = oh * wh;
    let qblocks = qn.div_ceil(NQ);
    let taps: Vec<usize> = (0..kh)
        .flat_map(|ky| {
            let slot = &slot;
            (0..kw).map(move |kx| {
                let (y, x) = (ky * dh, kx * dw);
                slot[(y % sh) * sw + x % sw] * phase + (y / sh) * wh + x / sw
            })
        })
        .collect();
    // Slack after the last plane for the reads of the dropped positions: the last channel's
    // reads reach its largest tap plus every block's 64 positions. (None for a 1x1 kernel over
    // a multiple of 64 positions, which then reads every image in place.)
    let max_tap = taps.iter().copied().max().unwrap_or(0);
    let slack = (qblocks * NQ + max_tap).saturating_sub(plane);
    let jobs = n * groups;
    // Without padding and stride the input planes are already in the layout read below: every
    // job reads them in place (the blocks whose full-vector reads could pass the end of `x`
    // read under the valid lanes' masks, see `masked` below; at batch 1 the copy of a 1x1
    // layer's input had cost as much as its arithmetic). Other convolutions read a padded copy.
    let hw = h * w;
    let in_place = sh == 1 && sw == 1 && [t, b, l, r] == [0; 4];
    let copied_from = if in_place { jobs } else { 0 };
    // Every copied job's buffer starts on a cache line (64 bytes).
    let xlen = (cin_g * plane + slack).next_multiple_of(16);
    // Uninitialised, then zeroed job by job by the thread that fills it, while it stays in
    // that core's cache (a zeroed allocation is one single-threaded memset of the whole batch).
    let total = (jobs - copied_from) * xlen + 16;
    let mut xbuf: Vec<f32> = Vec::with_capacity(total);
    let spare = &mut xbuf.spare_capacity_mut()[..total];
    let skew = spare.as_ptr().align_offset(64).min(15);
    let (head, rest) = spare.split_at_mut(skew);
    let (body, tail) = rest.split_at_mut((jobs - copied_from) * xlen);
    head.iter_mut().chain(tail.iter_mut()).for_each(|v| {
        v.write(0.0);
    });
    // Each job's planes in runs of channels (several per thread at batch 1).
    let threads = rayon::current_num_threads().max(1);
    let cper = if jobs - copied_from >= 2 * threads {
        cin_g
    } else {
        cin_g.div_ceil(4 * threads).max(1)
    };
    body.par_chunks_mut(xlen).enumerate().for_each(|(k, dst)| {
        let job = copied_from + k;
        let src = &x[job * cin_g * h * w..][..cin_g * h * w];
        // The last run also holds the slack.
        dst.par_chunks_mut(cper * plane)
            .enumerate()
            .for_each(|(u, dst)| {
                // (Past the last channel, when the slack exceeds a run: none.)
                let channels = (u * cper).min(cin_g)..((u + 1) * cper).min(cin_g);
                if sh == 1 && sw == 1 {
                    // One phase, the padded plane: written in order, each float once (zeroing
                    // the whole buffer first cost as much as the copy).
                    pad_planes(
                        &src[channels.start * hw..channels.end * hw],
                        [h, w],
                        geo.pad,
                        dst,
                    );
                    return;
                }
                let dst = super::zeroed(dst);
                for c in channels {
                    for y in 0..h {
                        let (a, i) = ((y + t) % sh, (y + t) / sh);
                        let row = &src[(c * h + y) * w..][..w];
                        let base = (c - u * cper) * plane + i * wh;
                        if sw == 1 {
                            if slot[a] != usize::MAX {
                                dst[base + slot[a] * phase + l..][..w].copy_from_slice(row);
                            }
                            continue;
                        }
                        if sw == 2 {
                            split_row2(row, dst, base, &slot[a * 2..a * 2 + 2], l, phase);
                            continue;
                        }
                        // Column phase by column phase: padded column x + l goes to phase (x + l) %
                        // sw, column (x + l) / sw.
                        for col in 0..sw {
                            let sl = slot[a * sw + col];
                            if sl == usize::MAX {
                                continue;
                            }
                            let x0 = (col + sw - l % sw) % sw;
                            let d = &mut dst[base + sl * phase + (x0 + l) / sw..];
                            for (d, &v) in d.iter_mut().zip(row.iter().skip(x0).step_by(sw)) {
                                *d = v;
                            }
                        }
                    }
                }
            });
    });
    // SAFETY: head, body and tail, all `total` elements, were initialised above.
    unsafe { xbuf.set_len(total) };
    let xp = &xbuf[skew..skew + (jobs - copied_from) * xlen];
    let outp = Ptr(out.ptr);
    let (ctot, coff) = (out.channels, out.offset);
    // Where each 16-position vector of each block goes: the mask of its valid positions (ox <
    // ow, q < qn) and the output index of the first of them. Valid positions are consecutive
    // in the output (row-major), so a vector is stored compressed under its mask.
    let mut vectors = vec![(0u16, 0usize); qblocks * NQ / 16];
    // Output row oy is positions oy * wh .. oy * wh + ow, set vector by vector (a walk over
    // every position was a serial loop of up to 13 000 steps per call, SqueezeNet's conv1,
    // while the other threads waited).
    for oy in 0..oh {
        let q0 = oy * wh;
        let mut q = q0;
        while q < q0 + ow {
            let v = q / 16;
            let end = ((v + 1) * 16).min(q0 + ow);
            let (mask, first) = &mut vectors[v];
            if *mask == 0 {
                *first = oy * ow + (q - q0);
            }
            *mask |= (((1u32 << (end - q)) - 1) << (q % 16)) as u16;
            q = end;
        }
    }
    // Tasks: a run of channel blocks, one image and group, and a run of q blocks; enough of
    // them for every thread (several each, for balance). A channel run's weights fit in half
    // of a core's L2 and tasks are numbered channel run first, so that the consecutive tasks a
    // thread takes reuse the same weights over every image: 512-channel 3x3 weights (9.4 MB)
    // are then read once per run of images instead of once per image.
    let threads = rayon::current_num_threads().max(1);
    let mut qrun = qblocks.min(4);
    let block_bytes = cin_g * taps.len() * NC * size_of::<f32>();
    let mut crun = packed.blocks.min((WEIGHT_BUDGET / block_bytes).max(1));
    let count =
        |qrun: usize, crun: usize| jobs * qblocks.div_ceil(qrun) * packed.blocks.div_ceil(crun);
    // 1x1 kernels split positions first: a channel run reads all of its positions' inputs,
    // which for a 1x1 kernel are far larger than the weights (SqueezeNet's squeeze layers at
    // batch 1: 0.61 -> 0.54 ms, their input read by two channel runs before).
    let by_positions = taps.len() == 1;
    while count(qrun, crun) < 4 * threads && (qrun > 1 || crun > 1) {
        if crun > 1 && (crun >= qrun || qrun == 1) && !(by_positions && qrun > 1) {
            crun = crun.div_ceil(2);
        } else {
            qrun = qrun.div_ceil(2);
        }
    }
    let (mut nq, mut nc) = (qblocks.div_ceil(qrun), packed.blocks.div_ceil(crun));
    // Few tasks (batch 1): as many position runs (1x1 kernels), then channel runs, as make
    // the count a multiple of the threads, so that none waits on another's last task. Runs
    // are split evenly (sizes differ by one block at most), positions and channels alike.
    if by_positions {
        while jobs * nq * nc < 16 * threads && (jobs * nq * nc) % threads != 0 && nq < qblocks {
            nq += 1;
        }
    }
    while jobs * nq * nc < 16 * threads && (jobs * nq * nc) % threads != 0 && nc < packed.blocks {
        nc += 1;
    }
    // What a call prefetches of each channel c's inputs, at c * plane + prefetch + lines: with
    // several taps (many multiply-adds per input line), those of channel c + 24 / taps (at
    // least 2), read later in the same call; a 1x1 kernel reads its inputs too quickly for
    // that and fetches, in the first call over a block, the next block's.
    let prefetch = if taps.len() > 1 {
        (24 / taps.len()).max(2) * plane
    } else {
        NQ
    };
    // Offsets (16 floats apart) covering what a call reads of one channel: each tap's 64
    // positions, overlapping ranges merged (stride phases lie far apart).
    let mut lines = Vec::new();
    let mut sorted = taps.clone();
    sorted.sort_unstable();
    let mut next = 0;
    for &o in &sorted {
        let mut at = o.max(next);
        while at < o + NQ {
            lines.push(at);
            at += 16;
        }
        // The last read of this tap ends inside the line at o + NQ - 1.
        next = next.max(at);
    }
    if let Some(&o) = sorted.last() {
        lines.push(o + NQ - 1);
    }
    // Kernels larger than 3x3 (a 7x7 first layer over 3 channels) read each line for many taps
    // and cover many lines: there the prefetches cost more than they save.
    if taps.len() > 9 {
        lines.clear();
    }
    let bsize = cin_g * taps.len() * NC;
    let zeros = [0f32; NC];
    let opl = oh * ow;
    let sh = Shared {
        x,
        xp,
        xlen,
        copied_from,
        cin_g,
        hw,
        plane,
        qn,
        qblocks,
        wh,
        ow,
        oh,
        taps: &taps,
        lines: &lines,
        prefetch,
        vectors: &vectors,
        max_tap,
    };
    if let Some(pool) = pool {
        assert!(residual.is_none());
        // SAFETY: the caller's contract (`out` holds the pooled output).
        unsafe { conv_pool(&sh, geo, packed, bias, relu, pool, out) };
        return;
    }
    (0..jobs * nq * nc).into_par_iter().for_each(|task| {
        let (ci, rest) = (task / (jobs * nq), task % (jobs * nq));
        let (job, qi) = (rest / nq, rest % nq);
        let (img, g) = (job / groups, job % groups);
        let (qb0, qb1) = (qi * qblocks / nq, (qi + 1) * qblocks / nq);
        let (cb0, cb1) = (ci * packed.blocks / nc, (ci + 1) * packed.blocks / nc);
        let xj = sh.input(job);
        // Input channels in chunks (partial sums accumulate in the output), then output
        // channel blocks, then position blocks: one chunk's inputs for the task's position
        // blocks stay in L2 while every channel block uses them.
        for c0 in (0..cin_g).step_by(CHUNK) {
            let cn = CHUNK.min(cin_g - c0);
            let last = c0 + cn == cin_g;
            // Channel blocks outside, position blocks inside: each block of output channels
            // is written as runs of up to 4 x 64 positions per plane instead of 64 (the output
            // planes lie far apart; short runs over many of them stalled the stores: SqueezeNet
            // at batch 32 -5 %, its first layer 17.5 -> 13 ms), and its weights stay in L1.
            // Except for 1x1 kernels over 128 or more channels, whose time goes to reading the
            // inputs: there every channel block uses a position block's inputs while they are
            // in L1, which overlaps the next block's reads with arithmetic (SqueezeNet's
            // squeeze layers -7 %).
            let (nqs, ncs) = (qb1 - qb0, cb1 - cb0);
            let positions_outside = taps.len() == 1 && cin_g >= 128;
            for i in 0..nqs * ncs {
                let (qb, cb) = if positions_outside {
                    (qb0 + i / ncs, cb0 + i % ncs)
                } else {
                    (qb0 + i % nqs, cb0 + i / nqs)
                };
                // The last block computes only the vectors that hold positions (a 14 x 16 grid
                // is 3.5 blocks: the last one is 2 vectors, not 4).
                let nv = (qn - qb * NQ).div_ceil(16).min(NQ / 16);
                let vecs = &vectors[qb * 4..qb * 4 + nv];
                let wb = &packed.data[(g * packed.blocks + cb) * bsize..][..bsize];
                let wb = &wb[c0 * taps.len() * NC..];
                let nco = (cout_g - cb * NC).min(NC);
                let q0 = qb * NQ;
                let co0 = g * cout_g + cb * NC;
                let b = match bias {
                    Some(b) if last => b[co0..co0 + nco].as_ptr(),
                    _ => zeros.as_ptr(),
                };
                let dst = outp.get().wrapping_add((img * ctot + coff + co0) * opl);
                // Partial sums go on from what the previous chunk stored; the first chunk
                // starts from the residual (same layout as the output) or zeros.
                let init = match res {
                    _ if c0 > 0 => dst.cast_const(),
                    Some(r) => r.get().cast_const().wrapping_add((img * cout + co0) * opl),
                    None => std::ptr::null(),
                };
                // SAFETY: AVX-512F is available (the caller checked `available`). Reads:
                // channel c, tap o, position q0 + 16 nv - 1 at most c * plane + o + q0 + 16
                // nv - 1: in a copy, < cin_g * plane + slack <= xj.len() (the slack covers
                // the last block and the largest tap); in place, inside `x` (`masked` checked
                // it), or only the valid lanes, inside their planes; weights `cn *
                // taps * NC` floats of this block from channel c0; `nco` biases. Writes
                // (and reads back, when accumulating): for channels co0..co0+nco of image
                // img, the valid positions of this block, which belong to this task alone
                // and lie inside `out`'s capacity; the same positions of the residual
                // (checked to hold the whole output).
                unsafe {
                    kernel(
                        xj.as_ptr().add(c0 * plane + q0),
                        &taps,
                        prefetch,
                        if taps.len() > 1 || cb == cb0 {
                            &lines
                        } else {
                            &[]
                        },
                        sh.pf_channels(c0, cn, qb),
                        cn,
                        plane,
                        wb.as_ptr(),
                        dst,
                        opl,
                        vecs,
                        nco,
                        init,
                        b,
                        relu && last,
                        true,
                        sh.masked(job, q0, nv),
                    );
                }
            }
        }
    });
}

/// What [`conv2d_into`] prepared, for its task loop and [`conv_pool`]'s.
struct Shared<'a> {
    x: &'a [f32],
    /// The copied jobs' padded inputs, `xlen` floats each, from job `copied_from` on.
    xp: &'a [f32],
    xlen: usize,
    copied_from: usize,
    cin_g: usize,
    hw: usize,
    plane: usize,
    qn: usize,
    qblocks: usize,
    wh: usize,
    ow: usize,
    oh: usize,
    taps: &'a [usize],
    lines: &'a [usize],
    prefetch: usize,
    vectors: &'a [(u16, usize)],
    max_tap: usize,
}

impl Shared<'_> {
    /// Job `job`'s input: read in place, or its padded copy.
    fn input(&self, job: usize) -> &[f32] {
        if job < self.copied_from {
            &self.x[job * self.cin_g * self.hw..]
        } else {
            &self.xp[(job - self.copied_from) * self.xlen..][..self.xlen]
        }
    }

    /// Whether position block `q0..` (`nv` vectors) of job `job` reads under the masks: in
    /// place, where its last channel's full vectors reach past `x` (only the last image's last
    /// blocks); a valid position's reads stay inside its plane.
    fn masked(&self, job: usize, q0: usize, nv: usize) -> bool {
        job < self.copied_from
            && job * self.cin_g * self.hw
                + (self.cin_g - 1) * self.plane
                + q0
                + 16 * nv
                + self.max_tap
                > self.x.len()
    }

    /// The channels of a call over channels `c0..c0 + cn` and position block `qb` that
    /// prefetch, with targets inside the job's input: channels `prefetch / plane` ahead
    /// (several taps), or the next block of the same channel (1x1).
    fn pf_channels(&self, c0: usize, cn: usize, qb: usize) -> usize {
        if self.taps.len() > 1 {
            self.cin_g
                .saturating_sub(c0 + self.prefetch / self.plane)
                .min(cn)
        } else if qb + 1 < self.qblocks {
            cn
        } else {
            0
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Tests: the band budget instead of [`POOL_BAND_BYTES`] (small, for many bands).
    pub(super) static BAND_BYTES: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Bytes of convolution output one task computes before pooling it: a band of rows of every
/// output channel, which stays in the core's L2 between the two.
const POOL_BAND_BYTES: usize = 384 * 1024;

/// [`conv2d_into`] followed by max pooling, band by band: each task computes the convolution
/// rows that a band of pooled rows reads (those shared with the band before it in the task
/// carried over) into a scratch buffer, then pools them into `out`. The convolution's output never
/// goes through memory: a first layer followed by pooling (SqueezeNet's 3x3 stride-2 layer
/// over 227 x 227, 3.3 MB per image) wrote it to L3 and read it back.
///
/// # Safety
/// As [`conv2d_into`], `out` holding the pooled `[N, out.channels, ph, pw]`.
unsafe fn conv_pool(
    sh: &Shared,
    geo: &Geometry,
    packed: &Packed,
    bias: Option<&[f32]>,
    relu: bool,
    pool: &Pool,
    out: Out,
) {
    use rayon::prelude::*;
    let Geometry {
        n,
        cin,
        groups,
        cout,
        ..
    } = *geo;
    let (cin_g, cout_g) = (cin / groups, cout / groups);
    let &Shared {
        plane,
        qn,
        wh,
        ow,
        oh,
        taps,
        lines,
        prefetch,
        vectors,
        ..
    } = sh;
    let [ph, pw] = pool
        .output([oh, ow])
        .expect("the caller checked that the pooling window fits");
    let [pt, _, pl, pr] = pool.pad;
    let ([kh, _], [sy, sx]) = (pool.k, pool.s);
    // The convolution rows pooled rows py0..py1 read.
    let rows = |py0: usize, py1: usize| {
        (
            (py0 * sy).saturating_sub(pt).min(oh),
            ((py1 - 1) * sy + kh).saturating_sub(pt).min(oh),
        )
    };
    // Pooled rows per band: the band's convolution rows within the budget, and enough tasks
    // for every thread (four each) when the batch alone does not give them.
    let jobs = n * groups;
    let threads = rayon::current_num_threads().max(1);
    let row_bytes = cout_g * ow * size_of::<f32>();
    #[cfg(test)]
    let budget = BAND_BYTES.get().unwrap_or(POOL_BAND_BYTES);
    #[cfg(not(test))]
    let budget = POOL_BAND_BYTES;
    let mut bp = ((budget / row_bytes.max(1)).saturating_sub(kh) / sy).max(1);
    while bp > 1 && jobs * ph.div_ceil(bp) < 4 * threads {
        bp = bp.div_ceil(2);
    }
    let nb = ph.div_ceil(bp);
    let (ctot, coff) = (out.channels, out.offset);
    let outp = Ptr(out.ptr);
    let bsize = cin_g * taps.len() * NC;
    let zeros = [0f32; NC];
    let wp = ow + pl + pr;
    thread_local! {
        // Each thread's band buffer, kept between calls: zeroing a fresh one per task cost
        // as much as pooling it.
        static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    // Tasks: runs of consecutive bands of one image, one run per image when the batch gives
    // every thread enough of them. A band reuses the convolution rows it shares with the one
    // before it in its run (copied to the front of the buffer) instead of computing them
    // again (ResNet-18's 7x7 first layer: one row in eleven).
    let runs = if jobs >= 4 * threads {
        1
    } else {
        (4 * threads).div_ceil(jobs).min(nb)
    };
    // Rows of the largest band: the buffer's plane stride, the same for every band.
    let bmax = (0..nb)
        .map(|bi| {
            let (r0, r1) = rows(bi * ph / nb, (bi + 1) * ph / nb);
            r1 - r0
        })
        .max()
        .unwrap_or(0);
    let ld = bmax * ow;
    (0..jobs * runs).into_par_iter().for_each(|task| {
        SCRATCH.with(|cell| {
            let mut own = Vec::new();
            let mut held = cell.try_borrow_mut();
            let scratch = match held.as_deref_mut() {
                Ok(v) => v,
                Err(_) => &mut own,
            };
            if scratch.len() < cout_g * ld {
                scratch.resize(cout_g * ld, 0.0);
            }
            let mut vrow = vec![f32::NEG_INFINITY; wp];
            let mut phases = vec![f32::NEG_INFINITY; sx * wp.div_ceil(sx)];
            let (job, ri) = (task / runs, task % runs);
            let (img, g) = (job / groups, job % groups);
            let xj = sh.input(job);
            // The rows the previous band computed.
            let mut prev: Option<(usize, usize)> = None;
            for bi in ri * nb / runs..(ri + 1) * nb / runs {
                let (py0, py1) = (bi * ph / nb, (bi + 1) * ph / nb);
                let (r0, r1) = rows(py0, py1);
                let band = r1 - r0;
                // Rows r0..r0 + carry were the previous band's last: moved to the front.
                let carry = match prev {
                    Some((p0, p1)) if p0 <= r0 && r0 < p1 => p1.min(r1) - r0,
                    _ => 0,
                };
                if carry > 0 {
                    let from = (r0 - prev.map_or(r0, |p| p.0)) * ow;
                    for co in 0..cout_g {
                        scratch.copy_within(co * ld + from..co * ld + from + carry * ow, co * ld);
                    }
                }
                prev = Some((r0, r1));
                // Positions of rows r0 + carry..r1 (on the phase width), and their blocks.
                let (qa, qz) = (
                    (r0 + carry) * wh,
                    ((r1 * wh).min(qn)).max((r0 + carry) * wh),
                );
                let (qba, qbz) = (qa / NQ, qz.div_ceil(NQ));
                let sp = scratch.as_mut_ptr();
                for c0 in (0..cin_g).step_by(CHUNK) {
                    let cn = CHUNK.min(cin_g - c0);
                    let last = c0 + cn == cin_g;
                    // Runs of 4 position blocks, and in each every channel block: the run's
                    // inputs stay in L1 while the channel blocks use them (as in `conv2d_into`).
                    for (qg, cb) in (qba..qbz)
                        .step_by(4)
                        .flat_map(|qg| (0..packed.blocks).map(move |cb| (qg, cb)))
                    {
                        let wb = &packed.data[(g * packed.blocks + cb) * bsize..][..bsize];
                        let wb = &wb[c0 * taps.len() * NC..];
                        let nco = (cout_g - cb * NC).min(NC);
                        let co0 = g * cout_g + cb * NC;
                        let b = match bias {
                            Some(b) if last => b[co0..co0 + nco].as_ptr(),
                            _ => zeros.as_ptr(),
                        };
                        for qb in qg..(qg + 4).min(qbz) {
                            let q0 = qb * NQ;
                            // This block's vectors, restricted to the band's rows; each stores at
                            // its first kept position's index in the band.
                            let mut vecs = [(0u16, 0usize); NQ / 16];
                            let mut nv = 0;
                            for (v, slot) in vecs.iter_mut().enumerate() {
                                let Some(&(m, first)) = vectors.get(qb * 4 + v) else {
                                    break;
                                };
                                let at = (q0 + 16 * v) as isize;
                                let keep = m & span(qa as isize - at, qz as isize - at);
                                if keep != 0 {
                                    let skipped = (m & ((1u32 << keep.trailing_zeros()) - 1) as u16)
                                        .count_ones()
                                        as usize;
                                    *slot = (keep, first + skipped - r0 * ow);
                                    nv = v + 1;
                                }
                            }
                            if nv == 0 {
                                continue;
                            }
                            let dst = sp.wrapping_add(cb * NC * ld);
                            // SAFETY: as in `conv2d_into`: reads of this job's input (in place or
                            // its copy), this block's weights and biases; writes the kept
                            // positions of rows r0..r1 of channels cb*NC..cb*NC+nco of the
                            // scratch ([cout_g][bmax][ow], every index below cout_g * ld).
                            unsafe {
                                kernel(
                                    xj.as_ptr().add(c0 * plane + q0),
                                    taps,
                                    prefetch,
                                    if taps.len() > 1 || cb == 0 {
                                        lines
                                    } else {
                                        &[]
                                    },
                                    sh.pf_channels(c0, cn, qb),
                                    cn,
                                    plane,
                                    wb.as_ptr(),
                                    dst,
                                    ld,
                                    &vecs[..nv],
                                    nco,
                                    if c0 > 0 {
                                        dst.cast_const()
                                    } else {
                                        std::ptr::null()
                                    },
                                    b,
                                    relu && last,
                                    false,
                                    sh.masked(job, q0, nv),
                                );
                            }
                        }
                    }
                }
                // Pooled rows py0..py1 of each channel, from the band (row r0 of the
                // convolution is its row 0).
                let g2 = super::pool::PoolGeometry::new(
                    [band, ow],
                    [py1 - py0, pw],
                    pool.k,
                    pool.s,
                    [pt + r0 - py0 * sy, pl, pr],
                );
                for co in 0..cout_g {
                    let plane = &scratch[co * ld..co * ld + band * ow];
                    let at = (img * ctot + coff + g * cout_g + co) * ph * pw + py0 * pw;
                    // SAFETY: rows py0..py1 of this image's channel, which belong to this task
                    // alone, inside `out` (the caller's contract).
                    let o = unsafe {
                        std::slice::from_raw_parts_mut(
                            outp.get().add(at).cast::<MaybeUninit<f32>>(),
                            (py1 - py0) * pw,
                        )
                    };
                    super::pool::pool_into(&g2, o, plane, &mut vrow, &mut phases);
                }
            }
        })
    });
}

/// The `[h, w]` planes of `src`, each zero-padded by `[t, b, l, r]`, one after the other into
/// the start of `dst`, and zeros in the rest of `dst`.
fn pad_planes(
    src: &[f32],
    [h, w]: [usize; 2],
    [t, b, l, r]: [usize; 4],
    dst: &mut [MaybeUninit<f32>],
) {
    let wp = w + l + r;
    let mut at = 0;
    let zero = |dst: &mut [MaybeUninit<f32>], at: &mut usize, n: usize| {
        dst[*at..*at + n].fill(MaybeUninit::new(0.0));
        *at += n;
    };
    for plane in src.chunks_exact(h * w) {
        zero(dst, &mut at, t * wp + l);
        for (y, row) in plane.chunks_exact(w).enumerate() {
            dst[at..at + w].write_copy_of_slice(row);
            at += w;
            zero(dst, &mut at, if y + 1 < h { r + l } else { r });
        }
        zero(dst, &mut at, b * wp);
    }
    let rest = dst.len() - at;
    zero(dst, &mut at, rest);
}

/// Stride 2: writes a row's even and odd columns to their two phases (column x is padded
/// column x + l: phase (x + l) % 2, index (x + l) / 2 from `base`), 16 at a time; only the
/// stored ones (`slots`: the row's two phase slots, `usize::MAX` where not stored).
fn split_row2(row: &[f32], dst: &mut [f32], base: usize, slots: &[usize], l: usize, phase: usize) {
    let (se, so) = (slots[l % 2], slots[(l + 1) % 2]);
    let (pe, ne) = (base + se.wrapping_mul(phase) + l / 2, row.len().div_ceil(2));
    let (po, no) = (base + so.wrapping_mul(phase) + l.div_ceil(2), row.len() / 2);
    // Only the stored phases (one, for a 1x1 kernel with stride 2); two are disjoint ranges.
    let (ev, od) = match (se == usize::MAX, so == usize::MAX) {
        (true, true) => return,
        (false, true) => (Some(&mut dst[pe..pe + ne]), None),
        (true, false) => (None, Some(&mut dst[po..po + no])),
        (false, false) if pe < po => {
            let (a, b) = dst.split_at_mut(po);
            (Some(&mut a[pe..pe + ne]), Some(&mut b[..no]))
        }
        (false, false) => {
            let (a, b) = dst.split_at_mut(pe);
            (Some(&mut b[..ne]), Some(&mut a[po..po + no]))
        }
    };
    // SAFETY: this module's code runs only where AVX-512F is available.
    unsafe { deinterleave(row, ev, od) };
}

/// `row`'s even elements to `even`, its odd ones to `odd` (of lengths at least ⌈n/2⌉ and
/// ⌊n/2⌋), each only where given: 32 floats at a time, the last 1..31 under masks (as scalars
/// they took as long as the rest of a 56-wide row).
#[target_feature(enable = "avx512f")]
unsafe fn deinterleave(row: &[f32], mut even: Option<&mut [f32]>, mut odd: Option<&mut [f32]>) {
    let ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let n = row.len();
    assert!(
        even.as_ref().is_none_or(|e| e.len() >= n.div_ceil(2))
            && odd.as_ref().is_none_or(|o| o.len() >= n / 2)
    );
    for i in (0..n).step_by(32) {
        let rest = (n - i).min(32);
        let (ma, mb) = tail_masks(rest);
        // SAFETY: the loads read row[i..i + rest], the stores even[i / 2..][..⌈rest/2⌉] and
        // odd[i / 2..][..⌊rest/2⌋], inside the lengths checked above; masked-off lanes are
        // not accessed.
        unsafe {
            let a = _mm512_maskz_loadu_ps(ma, row.as_ptr().add(i));
            let b = _mm512_maskz_loadu_ps(mb, row.as_ptr().add(i + 16));
            if let Some(e) = even.as_deref_mut() {
                let v = _mm512_permutex2var_ps(a, ie, b);
                _mm512_mask_storeu_ps(e.as_mut_ptr().add(i / 2), low_mask(rest.div_ceil(2)), v);
            }
            if let Some(o) = odd.as_deref_mut() {
                let v = _mm512_permutex2var_ps(a, io, b);
                _mm512_mask_storeu_ps(o.as_mut_ptr().add(i / 2), low_mask(rest / 2), v);
            }
        }
    }
}

/// The load masks of the two vectors holding the last `rest` (<= 32) floats of a row.
pub(super) fn tail_masks(rest: usize) -> (u16, u16) {
    (low_mask(rest.min(16)), low_mask(rest.saturating_sub(16)))
}

/// The low `n` (<= 16) bits.
pub(super) fn low_mask(n: usize) -> u16 {
    ((1u32 << n) - 1) as u16
}

/// Lanes `lo..hi` (clamped to 0..16) as a mask.
pub(super) fn span(lo: isize, hi: isize) -> u16 {
    let (lo, hi) = (lo.clamp(0, 16), hi.clamp(0, 16));
    if hi <= lo {
        0
    } else {
        (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as u16
    }
}

/// `16 * vecs.len()` (<= 64) positions x `nco` (<= 6) output channels: `sum over c, taps of w[(c
/// * taps + k) * NC + j] * x[c * plane + tap_k + i]` (plus what `init` holds at the same place,
/// when not null), plus `bias[j]` and, when
/// `relu`, the ReLU (NaN stays NaN); vector v's valid lanes (`vecs[v].0`) are stored compressed
/// at `dst + j * ld + vecs[v].1`, fetched for writing first when `fetch_out`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn kernel(
    x: *const f32,
    taps: &[usize],
    prefetch: usize,
    lines: &[usize],
    pf_channels: usize,
    cin: usize,
    plane: usize,
    w: *const f32,
    dst: *mut f32,
    ld: usize,
    vecs: &[(u16, usize)],
    nco: usize,
    init: *const f32,
    bias: *const f32,
    relu: bool,
    fetch_out: bool,
    masked: bool,
) {
    let a = Args {
        x,
        taps,
        prefetch,
        lines,
        pf_channels,
        cin,
        plane,
        w,
        dst,
        ld,
        vecs,
        init,
        bias,
        relu,
        fetch_out,
        masked,
    };
    // SAFETY (all calls): the caller's bounds; `nco` selects a fully unrolled instance.
    unsafe {
        match (a.vecs.len(), a.masked, a.taps.len() == 1) {
            (4, false, false) => by_channels::<4, false, false>(a, nco),
            (3, false, false) => by_channels::<3, false, false>(a, nco),
            (2, false, false) => by_channels::<2, false, false>(a, nco),
            (_, false, false) => by_channels::<1, false, false>(a, nco),
            (4, false, true) => by_channels::<4, false, true>(a, nco),
            (3, false, true) => by_channels::<3, false, true>(a, nco),
            (2, false, true) => by_channels::<2, false, true>(a, nco),
            (_, false, true) => by_channels::<1, false, true>(a, nco),
            (4, true, _) => by_channels::<4, true, false>(a, nco),
            (3, true, _) => by_channels::<3, true, false>(a, nco),
            (2, true, _) => by_channels::<2, true, false>(a, nco),
            (_, true, _) => by_channels::<1, true, false>(a, nco),
        }
    }
}

#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn by_channels<const V: usize, const M: bool, const ONE: bool>(a: Args, nco: usize) {
    // SAFETY: as `kernel`.
    unsafe {
        match nco {
            6 => block::<6, V, M, ONE>(a),
            5 => block::<5, V, M, ONE>(a),
            4 => block::<4, V, M, ONE>(a),
            3 => block::<3, V, M, ONE>(a),
            2 => block::<2, V, M, ONE>(a),
            _ => block::<1, V, M, ONE>(a),
        }
    }
}

struct Args<'a> {
    x: *const f32,
    taps: &'a [usize],
    prefetch: usize,
    lines: &'a [usize],
    /// The channels (the first ones) whose `lines` are fetched: those whose target lies in the
    /// input (past the last channel, prefetches of addresses outside it stalled on the TLB).
    pf_channels: usize,
    cin: usize,
    plane: usize,
    w: *const f32,
    dst: *mut f32,
    ld: usize,
    vecs: &'a [(u16, usize)],
    /// What the sums start from, laid out as `dst` (the partial sums so far, or a residual to
    /// add); null: zeros.
    init: *const f32,
    bias: *const f32,
    relu: bool,
    /// Whether to fetch the output lines for writing first (they are far from the cache).
    fetch_out: bool,
    /// Whether inputs are read under the vectors' masks (only valid positions: the reads of
    /// the others may pass the input's end).
    masked: bool,
}

/// One input channel and tap: the `V` vectors at `xo` (under the vectors' masks when
/// `MASKED`) times the `J` weights at `w`, into `acc`.
///
/// # Safety
/// AVX-512F; `xo` readable for `16 * V` floats (the masked lanes when `MASKED`), `w` for `J`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn step<const J: usize, const V: usize, const MASKED: bool>(
    acc: &mut [[__m512; V]; J],
    xo: *const f32,
    w: *const f32,
    vecs: &[(u16, usize)],
) {
    // SAFETY: the caller's bounds.
    unsafe {
        let xs: [__m512; V] = std::array::from_fn(|v| {
            if MASKED {
                _mm512_maskz_loadu_ps(vecs[v].0, xo.add(16 * v))
            } else {
                _mm512_loadu_ps(xo.add(16 * v))
            }
        });
        for (j, r) in acc.iter_mut().enumerate() {
            let wv = _mm512_set1_ps(*w.add(j));
            for v in 0..V {
                r[v] = _mm512_fmadd_ps(xs[v], wv, r[v]);
            }
        }
    }
}

#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn block<const J: usize, const V: usize, const MASKED: bool, const ONE: bool>(a: Args) {
    let mut acc = [[_mm512_setzero_ps(); V]; J];
    let mut wp = a.w;
    // SAFETY: the caller's bounds (see `kernel`).
    unsafe {
        // The output lines this call stores (and, when adding, first reads) are fetched for
        // writing now, to arrive while the arithmetic runs: at batch 32 they are far from the
        // cache, and stalling on them cost several percent.
        for j in (0..J).filter(|_| a.fetch_out) {
            for &(m, at) in a.vecs {
                if m != 0 {
                    let p = a.dst.add(j * a.ld + at);
                    _mm_prefetch::<_MM_HINT_ET0>(p as *const i8);
                    _mm_prefetch::<_MM_HINT_ET0>(p.wrapping_add(15) as *const i8);
                }
            }
        }
        if !a.init.is_null() {
            for (j, r) in acc.iter_mut().enumerate() {
                for (v, r) in r.iter_mut().enumerate() {
                    let (m, at) = a.vecs[v];
                    let p = a.init.add(j * a.ld + at);
                    *r = if m == u16::MAX {
                        _mm512_loadu_ps(p)
                    } else {
                        // The valid lanes' values are consecutive at p: load them, then
                        // spread them to their lanes (register forms; the memory forms of
                        // expand and compress are slow).
                        let k = ((1u32 << m.count_ones()) - 1) as u16;
                        _mm512_maskz_expand_ps(m, _mm512_maskz_loadu_ps(k, p))
                    };
                }
            }
        }
        let per_channel = a.taps.len() * NC;
        // The first `pf` channels prefetch inputs read later (see `prefetch` in
        // `conv2d_into`): each channel's lines lie a plane apart, a stride the hardware
        // prefetchers do not follow.
        let pf = if a.lines.is_empty() {
            0
        } else {
            a.pf_channels.min(a.cin)
        };
        if ONE {
            // One tap (1x1 kernels): the same loop without the loop over taps, and one line of
            // weights fetched per channel (a channel's are NC floats). Per-channel bookkeeping
            // had cost as many instructions as the arithmetic.
            let x0 = a.x.add(a.taps[0]);
            for c in 0..a.cin {
                _mm_prefetch::<_MM_HINT_T0>(wp.wrapping_add(PREFETCH * NC) as *const i8);
                if c < pf {
                    let xa = a.x.wrapping_add(c * a.plane + a.prefetch);
                    for &line in a.lines {
                        _mm_prefetch::<_MM_HINT_T0>(xa.wrapping_add(line) as *const i8);
                    }
                }
                step::<J, V, MASKED>(&mut acc, x0.add(c * a.plane), wp, a.vecs);
                wp = wp.add(NC);
            }
        } else {
            for c in 0..a.cin {
                // The weights are read once per call, in order, too slowly for the hardware
                // prefetchers: fetch those of the channel PREFETCH channels ahead (a prefetch
                // never faults, so past the end is harmless).
                let ahead = wp.wrapping_add(PREFETCH * per_channel);
                for line in (0..per_channel).step_by(16) {
                    _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line) as *const i8);
                }
                if c < pf {
                    let xa = a.x.wrapping_add(c * a.plane + a.prefetch);
                    for &line in a.lines {
                        _mm_prefetch::<_MM_HINT_T0>(xa.wrapping_add(line) as *const i8);
                    }
                }
                let xc = a.x.add(c * a.plane);
                for &o in a.taps {
                    step::<J, V, MASKED>(&mut acc, xc.add(o), wp, a.vecs);
                    wp = wp.add(NC);
                }
            }
        }
        let zero = _mm512_setzero_ps();
        for (j, r) in acc.iter().enumerate() {
            let b = _mm512_set1_ps(*a.bias.add(j));
            for (v, &r) in r.iter().enumerate() {
                let mut r = _mm512_add_ps(r, b);
                if a.relu {
                    // max(0, r) returns r when r is NaN (the second operand).
                    r = _mm512_max_ps(zero, r);
                }
                let (m, at) = a.vecs[v];
                let p = a.dst.add(j * a.ld + at);
                if m == u16::MAX {
                    _mm512_storeu_ps(p, r);
                } else if m != 0 {
                    let k = ((1u32 << m.count_ones()) - 1) as u16;
                    _mm512_mask_storeu_ps(p, k, _mm512_maskz_compress_ps(m, r));
                }
            }
        }
    }
}
