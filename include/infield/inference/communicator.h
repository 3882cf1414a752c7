#pragma once
/// @file inference/communicator.h
/// @brief The few MPI collectives Infield uses (MGVI samples over ranks, the sharded gradient
/// exchange in training) behind two classes. inference/communicator.cpp is the only file that
/// includes mpi.h; built without MPI (INFIELD_WITH_MPI=OFF), or run without an MPI launcher, every communicator is
/// the single process and every collective is the identity.
///
/// Sums are reproducible: each rank contributes its partial sum, the partial sums are gathered to
/// every rank and added there in rank order. All ranks therefore hold bitwise the same result, and
/// a given number of ranks gives the same result on every run, whatever the timing; the result
/// differs from one process's only by the rounding of a different summation order.

#include <Eigen/Core>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace infield {

class Communicator {
 public:
  /// The single process.
  Communicator();
  /// All ranks of the program (MPI_COMM_WORLD) once an MpiSession is active, else the single
  /// process.
  static Communicator world();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }

  /// The sum over ranks of `local`, added in rank order; every rank receives it.
  double sum(double local) const;
  std::int64_t sum(std::int64_t local) const;
  /// Element-wise sum over ranks in rank order, in place; every rank must pass the same size.
  void sum_in_place(Eigen::VectorXd& values) const;
  /// True on every rank if `flag` is true on any.
  bool any(bool flag) const;
  /// Every rank's vectors (all of size `length`), concatenated in rank order; ranks may contribute
  /// different numbers of vectors, including none.
  std::vector<Eigen::VectorXd> all_gather(const std::vector<Eigen::VectorXd>& local,
                                          Eigen::Index length) const;
  /// The same concatenation on rank `root` only (the others receive nothing): for results that
  /// one rank writes, without holding them on every rank.
  std::vector<Eigen::VectorXd> gather(const std::vector<Eigen::VectorXd>& local,
                                      Eigen::Index length, int root = 0) const;
  /// `bytes` of rank `root` on every rank.
  void broadcast(std::string& bytes, int root = 0) const;
  void barrier() const;
  /// This rank's share [begin, end) of `count` items dealt in contiguous blocks whose sizes differ
  /// by at most one (the first ranks get the larger blocks).
  std::pair<int, int> share(int count) const;
  /// The sum of `count` items dealt by share(count), each a vector of `length`: `local` holds this
  /// rank's items in order. They are added along one fixed binary tree over the item indices
  /// (pairwise summation), each node on the rank that owns its first item, so every rank receives
  /// the same bits for any number of ranks, one process included: results do not depend on how
  /// the work is dealt. Per rank it sends and receives about one vector per tree level it shares
  /// with other ranks, then the root's sum is broadcast.
  Eigen::VectorXd tree_sum(const std::vector<Eigen::VectorXd>& local, int count,
                           Eigen::Index length) const;
  /// Ends every rank of the communicator with exit status `code` (MPI_Abort): the way out when one
  /// rank fails and the others would wait for it in a collective. The single process exits.
  [[noreturn]] void abort(int code) const;

 private:
  friend class ShardedReduction;
  struct Impl;
  std::shared_ptr<const Impl> impl_;
  int rank_ = 0;
  int size_ = 1;
};

/// Data-parallel training's exchange of one float vector per step (a gradient in, parameters out),
/// with the update sharded over ranks: the vector's entries are dealt in contiguous shards (blocks
/// of 16 entries, as share() deals items); reduce_scatter() gives each rank the sum over ranks of
/// its own shard (added in rank order on one machine, in MPI's order across machines); each rank
/// then updates its shard alone (Adam on 1/K of the
/// parameters instead of all of them on every rank), and all_gather() assembles the whole vector
/// on every rank. Every rank ends with the same bits, and one process is the identity.
///
/// When all ranks share one machine, both steps go through MPI-3 shared memory: each rank writes
/// its vector once, the owner of a shard adds it straight from the others' memory, and
/// barriers (with MPI_Win_sync; two per call) order each call's writes before the reads and the
/// reads before the next call's writes; several times cheaper than an MPI_Allreduce of the vector, which on
/// this transport copies it through the kernel. Across machines, MPI_Reduce_scatter and
/// MPI_Allgatherv. Construction and destruction are collective over the communicator; both calls
/// must be made by every rank in the same order.
class ShardedReduction {
 public:
  /// kAutomatic: shared memory when all ranks share one machine, messages otherwise; kMessages:
  /// always MPI's collectives (for tests of the path several machines take).
  enum class Transport { kAutomatic, kMessages };
  ShardedReduction(const Communicator& communicator, Eigen::Index length,
                   Transport transport = Transport::kAutomatic);
  ~ShardedReduction();
  /// Frees the shared memory (collective); afterwards the object must not exchange. The
  /// destructor does it, except while an exception unwinds (one rank's failure: the others never
  /// join the collective, and the program is about to end every rank): where every rank leaves
  /// by the same error, call release() before throwing.
  void release();
  ShardedReduction(const ShardedReduction&) = delete;
  ShardedReduction& operator=(const ShardedReduction&) = delete;

  Eigen::Index length() const { return length_; }
  /// This rank's shard [shard_begin(), shard_end()) of the vector.
  Eigen::Index shard_begin() const { return shard_begin_; }
  Eigen::Index shard_end() const { return shard_end_; }
  Eigen::Index shard_size() const { return shard_end_ - shard_begin_; }
  /// True if the exchange goes through memory shared by all ranks (one machine).
  bool shared_memory() const;

  /// Memory of length() values that the other ranks read in place (shared memory), or nullptr:
  /// a contribution written here (by the backward pass, say, while it is still in cache) is
  /// passed to reduce_scatter() without a copy. Free from the return of reduce_scatter(), or of
  /// the all_gather() that follows it, until the next reduce_scatter(); all_gather() writes this
  /// rank's shard of it.
  float* contribution_buffer();
  /// `shard_sum` (shard_size() values) = the sum over ranks of `contribution` (length() values,
  /// or contribution_buffer()) on this rank's shard, added in rank order.
  void reduce_scatter(const float* contribution, float* shard_sum);
  /// The same sum handed to `consume(offset, sum, size)` in consecutive pieces of the shard
  /// (offsets into the vector), each while it is in cache: an update that reads the sum once
  /// (Adam) need not write it out and read it back.
  using ShardConsumer = std::function<void(Eigen::Index offset, const float* sum, Eigen::Index size)>;
  void reduce_scatter(const float* contribution, const ShardConsumer& consume);
  /// `full` (length() values) assembled from every rank's shard of its own `full`: afterwards
  /// every rank holds each shard as its owner had it. In shared memory the shards pass through
  /// the contribution buffers: call it after reduce_scatter() has returned, not between writing
  /// a contribution and reducing it.
  void all_gather(float* full);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  Eigen::Index length_ = 0, shard_begin_ = 0, shard_end_ = 0;
};

/// MPI for the lifetime of the object: MPI_Init_thread (funneled: only the thread that created
/// the session calls MPI; oneTBB workers never do) when the program was started by an MPI launcher
/// (mpirun, mpiexec, srun; detected from their environment variables), MPI_Finalize at the end.
/// Without a launcher, or without MPI support, it does nothing and Communicator::world() is the
/// single process. At most one session per program. If MPI was already initialised (by mpi4py,
/// say), the session uses it and leaves finalising to its owner.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  /// True if this build has MPI support.
  static bool supported();
  /// True if MPI was initialised by this session.
  bool active() const { return active_; }

 private:
  bool active_ = false;
};

}  // namespace infield
