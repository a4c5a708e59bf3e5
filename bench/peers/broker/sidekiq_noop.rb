# sidekiq_noop.rb: the Sidekiq peer of `scripts/bench broker`.
#   sidekiq -r ./sidekiq_noop.rb -c 2           one worker process
#   ruby sidekiq_noop.rb submit N               pushes N noop jobs
#                                               (push_bulk, 1000 at a time)
#                                               and waits until Sidekiq's
#                                               processed counter has grown
#                                               by N; prints seconds
# The Redis URL comes from REDIS_URL, as Sidekiq reads it.  Sidekiq has no
# completion callback without Sidekiq Pro's batches, so the submitter looks
# at the counter every 10 ms.
require 'sidekiq'
require 'sidekiq/api'

class NoopJob
  include Sidekiq::Worker
  sidekiq_options retry: false
  def perform(_i); end
end

if __FILE__ == $PROGRAM_NAME && ARGV[0] == 'submit'
  n = Integer(ARGV[1])
  before = Sidekiq::Stats.new.processed
  t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  (0...n).each_slice(1000) do |s|
    Sidekiq::Client.push_bulk('class' => NoopJob, 'args' => s.map { |i| [i] })
  end
  sleep 0.01 until Sidekiq::Stats.new.processed - before >= n
  puts format('%.3f', Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0)
end
