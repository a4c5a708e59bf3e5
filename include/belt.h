/* belt.h: the umbrella header of libbelt, a worker-pool job dispatcher
 * library built on channels.  Include this, or only the topic headers you
 * need from include/belt/.  Every public symbol starts with belt_ or BELT_. */
#ifndef BELT_H
#define BELT_H

#include "belt/version.h"
#include "belt/error.h"
#include "belt/chan.h"
#include "belt/job.h"
#include "belt/pool.h"
#include "belt/config.h"
#include "belt/sched.h"
#include "belt/stage.h"

#endif /* BELT_H */
